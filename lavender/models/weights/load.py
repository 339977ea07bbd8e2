"""One weight loader for every checkpoint layout, with one clear report.

A load must fit: a file that fills none of the model is always an error, and with ``strict`` (the
``ckpt_strict`` config key, default on) so is one that leaves part of what its layout covers
missing, shape-mismatched or unused. Gaps that are expected (a new task head, a BERT file without an
MLM head, a Kinetics classifier) are reported as such and never count. Only the part of the model
the layout covers is checked (a Kinetics file cannot fill BERT).
"""
import os
import re

from ...errors import CheckpointError
from .adapt import adapt_tensor
from .files import read_state_dict, unwrap
from .layouts import ALIASES, LAYOUT_SCOPE, MAPPERS, detect_layout
from .report import LoadReport, short_list

__all__ = ["load_state_dict_into", "load_weights", "STRICT_HINT"]

STRICT_HINT = "ckpt_strict (--ckpt_strict false)"


def load_state_dict_into(model, sd, strict=True, log=print, source="<state_dict>", layout=None, warn=None,
                         only=None, skip=None):
    """Load an in-memory state_dict with layout detection; returns a :class:`LoadReport`.

    Raises CheckpointError when nothing fits, or (``strict``) when the load is partial, before the
    model is touched. The report goes to ``log``, or to ``warn`` (default ``log``) for an accepted
    partial load. ``only`` / ``skip``: model-key prefixes to take only / never take from the file
    (``skip`` is a dict {prefix: why}); the completeness check then covers only what is taken.
    """
    sd = unwrap(sd)
    layout = layout or detect_layout(sd)
    target = model.state_dict()
    mapped, ignored, notes, expected = MAPPERS[layout](sd, target)
    skip = dict(skip or {})
    kept = {k: v for k, v in mapped.items() if (only is None or k.startswith(tuple(only)))
            and not k.startswith(tuple(skip))}
    for prefix, why in skip.items():
        n = sum(k.startswith(prefix) for k in mapped)
        if n:
            notes = notes + [f"{n} tensors {prefix}* not taken: {why}"]
    mapped = kept
    rep = LoadReport(source=source, layout=layout, ignored=ignored, adapted=notes)
    take = {}
    n_layers = len({k.split(".")[2] for k in target if k.startswith("trsfr.layer.")})
    dropped = set()
    for k, v in mapped.items():
        m = re.match(r"(?:enc_txt\.txt_)?trsfr\.layer\.(\d+)\.", k)
        if k not in target and layout == "hf_bert" and m and int(m.group(1)) >= n_layers:
            dropped.add(int(m.group(1)))  # a model configured with fewer layers takes the first ones
        elif k not in target:
            # Buffers that newer transformers no longer keep in the state_dict are not weights.
            (rep.ignored if k.endswith(("position_ids", "token_type_ids")) else rep.unexpected).append(k)
        elif v.shape == target[k].shape:
            take[k] = v
        else:
            try:
                new, note = adapt_tensor(k, v, target[k], model, mapped)
            except (ValueError, RuntimeError, AttributeError):  # no sensible adaptation: report it
                new, note = None, None
            if new is not None:
                take[k] = new
                rep.adapted.append(note)
            elif k.endswith("relative_position_index"):
                rep.ignored.append(k)  # recomputed from our window size; never learned
            else:
                rep.mismatched.append((k, tuple(v.shape), tuple(target[k].shape)))
    if dropped:
        rep.adapted.append(f"fusion encoder has {n_layers} layers: the file's layers "
                           f"{min(dropped)}-{max(dropped)} are not used (bert_config num_hidden_layers)")
    for a, b in ALIASES:
        for x, y in ((a, b), (b, a)):
            if x in take and y in target and y not in take:
                take[y] = take[x]
    scope = LAYOUT_SCOPE[layout]
    in_scope = [k for k in target if k.startswith(scope) and (only is None or k.startswith(tuple(only)))
                and not k.startswith(tuple(skip))]
    rep.out_of_scope = len(target) - len(in_scope)
    # relative_position_index buffers are derived from the window size, so a file may omit them.
    skipped = {k for k, _, _ in rep.mismatched}
    missing = [k for k in in_scope if k not in take and k not in skipped and not k.endswith("relative_position_index")]

    def why(k):
        return next((reason for prefix, reason in expected.items() if k.startswith(prefix)), None)
    for k in missing + sorted(skipped):
        if why(k):
            rep.expected.setdefault(why(k), []).append(k)
    rep.missing = [k for k in missing if not why(k)]
    rep.mismatched = [x for x in rep.mismatched if not why(x[0])]
    rep.loaded = sorted(take)
    if not take:
        raise CheckpointError(
            f"{source}: none of its {len(sd)} tensors fits this model (read as layout {layout}): is it a weights "
            f"file for this model? File keys: {short_list(sorted(sd), 3)}; model keys: {short_list(sorted(target), 3)}")
    if strict and not rep.ok:
        raise CheckpointError(
            f"{source} does not fit this model: {rep.problems()} (layout {layout}). A checkpoint of another "
            f"model or config (sizes, layers)? To load the part that fits anyway, set {STRICT_HINT}.\n{rep}")
    model.load_state_dict(take, strict=False)
    out = log if rep.ok else (warn or log)
    if out is not None:
        out(str(rep))
    return rep


def load_weights(model, path, strict=True, trust=False, log=print, warn=None, only=None, skip=None):
    """Load ``path`` (file or Hugging Face folder) into ``model``; returns a :class:`LoadReport`.

    ``strict`` (the ``ckpt_strict`` key) raises CheckpointError with the report if anything the layout
    covers is missing, or any key is unexpected or shape-mismatched (expected gaps and ignored keys
    never count); without it such a load goes on and the report goes to ``warn``. ``trust`` (the
    ``trust_checkpoint`` key) allows files that need full unpickling. ``only`` / ``skip``: see
    :func:`load_state_dict_into`.
    """
    sd, hint = read_state_dict(path, trust)
    return load_state_dict_into(model, sd, strict=strict, log=log, source=os.fspath(path),
                                layout=hint or detect_layout(sd), warn=warn, only=only, skip=skip)

