import subprocess
import sys

from rs5m.cli import build_parser, main
from rs5m.ledger import StageStats, write_stats


def test_funnel_command_prints_the_table_and_fails_on_inconsistency(tmp_path, capsys):
    write_stats(
        tmp_path / "results/pub11/metadata/wit/00000.stats.json",
        [StageStats("keyword_filter", "wit", 9, 4, {"no_keyword_match": 5})],
    )
    assert main(["funnel", str(tmp_path)]) == 0
    assert "| wit | 9 | 4 |" in capsys.readouterr().out
    write_stats(tmp_path / "results/pub11/urldedup/0000.stats.json", [StageStats("url_filter", "wit", 5, 5, {})])
    assert main(["funnel", str(tmp_path)]) == 1
    assert main(["funnel", str(tmp_path / "empty")]) == 2


def test_browse_is_registered():
    args = build_parser().parse_args(["browse", "somewhere", "--port", "0"])
    assert args.command == "browse" and args.port == 0


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "rs5m.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "browse" in result.stdout and "funnel" in result.stdout
