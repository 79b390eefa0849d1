"""Engine commands: one subcommand per view the service registers for the CLI (``analyze``, ``tokenmap``,
``probe``, ``faithfulness``, ``ablate``, and every view registered later): ``--model`` and its loading options, one
option per parameter of the view, ``--json`` when it has a JSON output and ``--out`` when it draws figures, images
or tables and names no ``out`` of its own. The work is the service's (:mod:`livr_viz.service.registry`)."""

from __future__ import annotations

import argparse

from livr_viz.cli.common import MODEL_HELP, _load, write_json
from livr_viz.service.registry import get_view, registered_views, save_outputs

PARAM_TYPES = {"str": str, "int": int, "float": float, "image": str}


def model_opts(p) -> None:
    p.add_argument("--model", default="demo-livr", help=MODEL_HELP)
    p.set_defaults(allow_pickle=False, trust_remote_code=False)
    p.add_argument("--allow-pickle", action="store_true", help="allow pickle-based weights (unsafe)")
    p.add_argument("--trust-remote-code", action="store_true")


def add_param(p, param) -> None:
    """One view parameter as an option (an empty help: the shared help for an option of that name)."""
    if param.kind == "bool":
        p.add_argument(param.flag, action="store_true", help=param.help or None)
        return
    kwargs = dict(type=PARAM_TYPES[param.kind], default=param.default, help=param.help or None)
    if param.choices is not None:
        kwargs["choices"] = param.choices
    p.add_argument(param.flag, required=param.required, **kwargs)


def add_view_command(sub, view) -> argparse.ArgumentParser:
    p = sub.add_parser(view.name, help=view.summary.replace("%", "%%"))
    model_opts(p)
    for param in view.params:
        add_param(p, param)
    kinds = {o.kind for o in view.outputs}
    if "json" in kinds:
        p.add_argument("--json", default=None)
    if kinds & {"figure", "image", "table"} and "out" not in view.param_names:
        p.add_argument("--out", default=None, help="folder for the figures and tables")
    p.set_defaults(func=cmd_view, view=view.name)
    return p


def cmd_view(args) -> int:
    """Load the model(s), run the view, print its text and Markdown, write its JSON and files."""
    view = get_view(args.view)
    values = {p.name: getattr(args, p.name) for p in view.params}
    names = args.model.split(",") if view.many_models else [args.model]
    results = {}
    for name in names:
        lm = _load(argparse.Namespace(**{**vars(args), "model": name}))
        result = results[name] = view.call(lm, **values)
        prefix = f"{name}: " if view.many_models else ""
        for output in view.outputs:
            if output.kind == "text":
                for line in result[output.name]:
                    print(prefix + line)
            elif output.kind == "markdown":
                print(prefix + result[output.name])
        if getattr(args, "out", None) and "out" not in view.param_names:
            for path in save_outputs(view, result, args.out):
                print(f"wrote {path}")
    json_outputs = [o.name for o in view.outputs if o.kind == "json"]
    if json_outputs and getattr(args, "json", None):
        key = json_outputs[0]
        write_json(args.json, {n: r[key] for n, r in results.items()} if view.many_models else results[names[0]][key])
    return 0


def add_commands(sub) -> None:
    for view in registered_views(cli=True):
        add_view_command(sub, view)
