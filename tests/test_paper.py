import pandas as pd

from vhs.paper import PAPER_NAMES, paper_curve, paper_positions, paper_results, paper_sources


def test_paper_numbers_load_with_numeric_sizes() -> None:
    table = paper_results()
    gpt = paper_curve("openai:gpt-4o")
    assert gpt["size"].tolist() == [1, 2, 3, 5, 10, 20, 50, 100]  # beyond 100 the paper's GPT-4o hit the payload limit
    assert gpt.set_index("size").loc[1, "accuracy"] == 0.825 and gpt.set_index("size").loc[100, "accuracy"] == 0.553
    needles_only = table[table["size_label"] == "oracle"]
    assert len(needles_only) and needles_only["size"].isna().all()
    assert set(PAPER_NAMES.values()) <= set(table["model"])


def test_paper_modes_and_position_depths_match_ours() -> None:
    assert set(paper_curve("GPT-4o", "multi_needles_only")["mode"]) == {"needles only"}
    assert set(paper_curve("GPT-4o", "multi")["mode"]) == {"multi"}
    gpt = paper_positions().query("model == 'GPT-4o'").set_index(["size", "position"])["depth"]
    assert gpt[(3, 1)] == 0.5 and gpt[(10, 9)] == 1.0  # needle indices up to 10 images
    assert round(gpt[(100, 0)], 2) == 0.05 and round(gpt[(100, 9)], 2) == 0.95  # depth buckets (tenths) above


def test_a_caption_names_each_paper_source_with_its_models() -> None:
    specs = ("openai:gpt-4o", "anthropic:claude-3-opus-20240229", "gemini:gemini-1.5-pro")
    rows = pd.concat([paper_curve(spec) for spec in specs])
    assert paper_sources(rows) == "ICLR2025 Fig.2 (digitized): GPT-4o, Gemini-1.5-pro; arXiv v1 Table 1: Claude-3 Opus"
    assert paper_sources(rows.iloc[:0]) == "none"
