"""What a chapter puts on its page: figures kept for their numbered captions, values for its prose, and
tables that fit the column. The notebook computes them; the page's markdown cites them by name
(`{glue:figure}`, `{glue:text}`, `{glue:md}`), so no number on a page is typed by hand.
"""

from collections.abc import Iterable
from typing import TypeVar

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown
from matplotlib.figure import Figure
from myst_nb import glue
from pandas.io.formats.style import Styler

T = TypeVar("T")


def figure(name: str, fig: Figure) -> None:
    """Keep `fig` for the page's `{glue:figure}` of `name` (numbered, captioned), and show it nowhere else."""
    glue(name, fig, display=False)
    plt.close(fig)


def value(name: str, shown: T) -> T:
    """Keep `shown` for a `{glue:text}` of `name` in the prose (a number, with a format such as `name:.2f`)
    or a `{glue:any}` on another page (a table); returns it."""
    glue(name, shown, display=False)
    return shown


def text(name: str, markdown: str) -> str:
    """Keep `markdown` for the prose's `{glue:md}` of `name` (a sentence, a list of sources); returns it."""
    glue(name, Markdown(markdown), display=False)
    return markdown


def table(frame: pd.DataFrame, percent: Iterable[str] = (), digits: int = 3, whole: Iterable[str] = ()) -> Styler:
    """`frame` as the book shows it: no index, numbers rounded to `digits`, the `percent` columns (fractions)
    as whole percentages, the `whole` columns (counts, mean tokens) to the unit, missing values blank."""
    percent = [column for column in percent if column in frame.columns]
    whole = [column for column in whole if column in frame.columns]
    numbers = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c]) and c not in percent + whole]
    return (
        frame.style.hide(axis="index")
        .format("{:.0%}", subset=percent, na_rep="")
        .format("{:,.0f}", subset=whole, na_rep="")
        .format(f"{{:.{digits}f}}", subset=numbers, na_rep="")
    )
