"""What every tab of the app shares: the error wrapper and the page's common inputs. (The events' queue settings
have their one place in :mod:`livr_viz.ui.queues`: every event takes ``**events(api_name)`` from there.)"""

from __future__ import annotations

import functools
import traceback
from dataclasses import dataclass, field

import gradio as gr

from livr_viz import service as S

STALE = "Inputs changed: press **Run** for this image, prompt and model."


def user_errors(fn):
    """Turn engine errors into clear gr.Error messages; the app keeps serving."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except S.LIVRError as exc:  # the user's input: its one-line message (never a server path)
            raise gr.Error(S.public_text(str(exc))) from None
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            traceback.print_exc()
            raise gr.Error(f"internal error ({type(exc).__name__}): {S.public_text(str(exc))}") from None

    return wrapper


@dataclass
class Page:
    """The components every tab reads (the input column, the answer beside the tabs, the session's state) and what
    the tabs know of the model the app started with. A tab builder takes the page, lays out its tab, wires its own
    events and returns its components; ``results`` collects everything a new input clears."""

    default_model: str
    n_layers: int  # selector ranges come from the model's config, never hard-coded
    n_latents: int
    examples: list[str]
    first: dict  # the opening view (the first example answered), {} when there is none
    model: gr.components.Component
    image: gr.components.Component
    prompt: gr.components.Component
    stage: gr.components.Component
    task: gr.components.Component
    preview: gr.components.Component
    answer: gr.components.Component
    probs: gr.components.Component
    views: gr.State  # this session's tabs that ran: what Export writes besides the attention view
    results: list = field(default_factory=list)
