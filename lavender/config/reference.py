"""The key reference, made from the declarations: `--help` text and docs/config.md."""
import json

from .keys import KEYS, SECTIONS

USAGE = ("usage: SCRIPT --config _args/X.json [--key value ...]\n"
         "Any key below can be set in the config file or on the command line (--key value, --key=value; a flag "
         "alone means true),\ne.g. --lr 1e-5 --size_batch 8 --path_output out/ --path_ckpt ckpt.pt. Command-line "
         "values win. Each key: type, default, description\n(docs/config.md has the allowed values and the "
         "metadata of each key).")


def _default(value):
    return json.dumps(value)


def _notes(k):
    notes = [] if k.original else ["ours"]
    if k.scope == "run":
        notes.append("run-wide")
    if k.resume:
        notes.append("may change on resume")
    if k.path:
        notes.append("path")
    if k.cli_only:
        notes.append("command line only")
    if k.from_ckpt:
        notes.append("from the checkpoint's args.json" + (" (evaluation only)" if k.from_ckpt == "eval" else ""))
    if k.task_key:
        notes.append(f"only for {k.task_key}")
    if k.family_key:
        notes.append(f"read for {k.family_key} (other families: a warning that it has no effect)")
    if k.no_effect:
        notes.append(f"no effect: {k.no_effect}")
    if k.not_built:
        notes.append("not built: only the default is accepted")
    return notes


def help_text():
    lines = [USAGE]
    for section, title in SECTIONS.items():
        lines.append(f"\n{section}: {title}")
        for k in (k for k in KEYS if k.section == section):
            lines.append(f"  --{k.name} ({k.type.name}, default {_default(k.default)})")
            lines.append(f"      {k.doc}")
    return "\n".join(lines)


def markdown():
    """docs/config.md (regenerate with `python -m lavender.config > docs/config.md`)."""
    out = ["# Config keys", "",
           "Generated from the declarations in `lavender/config/keys.py` by `python -m lavender.config > "
           "docs/config.md`; a test fails when this page is out of date.", "",
           "Every script takes `--config _args/X.json` and `--key value` for any key; command-line values win. "
           "*Origin*: the original repository's key or ours. *Notes*: **run-wide** keys apply to the whole run "
           "and the one shared model (a multi-task entry may not set them; the others it may set for its task); "
           "**may change on resume**: `--resume` accepts another value; **path**: relative values in a config "
           "file are relative to the repository root, on the command line to the working directory; "
           "**command line only**: ignored (with a warning) in any file and never written to a run's args.json; "
           "**from the checkpoint's args.json**: taken from the training config beside `path_ckpt` unless given "
           "on the command line.", ""]
    for section, title in SECTIONS.items():
        out += [f"## {section}", "", title + ".", "",
                "| key | type | default | allowed | description | origin | notes |", "|---|---|---|---|---|---|---|"]
        for k in (k for k in KEYS if k.section == section):
            cells = [f"`{k.name}`", k.type.name, f"`{_default(k.default)}`", k.type.allowed(), k.doc,
                     "original" if k.original else "ours", "; ".join(n for n in _notes(k) if n != "ours")]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        out.append("")
    return "\n".join(out)
