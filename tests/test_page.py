import pandas as pd

from vhs import page


def test_a_table_rounds_counts_to_the_unit_fractions_to_percent_and_leaves_missing_values_blank() -> None:
    frame = pd.DataFrame({"model": ["a", "b"], "seconds": [0.12345, None], "tokens": [81.0, 1234.6], "accuracy": [0.5, None]})
    html = page.table(frame, percent=("accuracy",), digits=4, whole=("tokens",)).to_html()
    assert "81.0000" not in html and ">81<" in html and ">1,235<" in html
    assert ">0.1235<" in html and ">50%<" in html and "nan" not in html.lower()
