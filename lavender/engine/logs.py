"""Console/file logging, progress bars and metric formatting for runs."""
import logging

log = logging.getLogger("lavender")


def setup_logging(level="info", main=True, path=None):
    """INFO (or `level`) on the main process, WARNING elsewhere; `path` adds a file handler."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    log.setLevel(getattr(logging, level.upper()) if main else logging.WARNING)
    if not log.handlers:
        h = logging.StreamHandler()
        h.setFormatter(fmt)
        log.addHandler(h)
    if path:
        fh = logging.FileHandler(path)
        fh.setFormatter(fmt)
        log.addHandler(fh)
    log.propagate = False


def progress(enabled, **kw):
    """A tqdm bar on the main process; None elsewhere."""
    if not enabled:
        return None
    from tqdm import tqdm
    return tqdm(dynamic_ncols=True, **kw)


def fmt_metrics(d):
    """`k=v` pairs, floats with 4 decimals."""
    return " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in d.items())
