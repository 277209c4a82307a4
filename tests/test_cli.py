"""The command line refuses bad options before any work, naming the option (issue 17)."""

import subprocess
import sys

import pytest

import fastrnn
from fastrnn.cli import main


@pytest.mark.parametrize("argv, message", [
    (["train", "digits", "--epochs", "0"], "argument --epochs: expected a positive int, got '0'"),
    (["train", "digits", "--epochs", "-1"], "argument --epochs: expected a positive int, got '-1'"),
    (["train", "digits", "--hidden", "0"], "argument --hidden: expected a positive int, got '0'"),
    (["train", "digits", "--hidden", "-1"], "argument --hidden: expected a positive int, got '-1'"),
    (["train", "digits", "--batch-size", "0"], "argument --batch-size: expected a positive int, got '0'"),
    (["train", "digits", "--batch-size", "two"], "argument --batch-size: expected a positive int, got 'two'"),
    (["train", "digits", "--seed", "-1"], "argument --seed: expected an int >= 0, got '-1'"),
    (["train", "digits", "--workers", "0"], "argument --workers: expected a positive int, got '0'"),
    (["train", "recall-sg", "--compare", "0"], "argument --compare: expected a positive int, got '0'"),
    (["train", "digits", "--plot", "/no/such/dir/x.png"],
     "argument --plot: cannot write '/no/such/dir/x.png': its directory '/no/such/dir' does not exist"),
    (["train", "digits", "--plot", "curve.txt"], "argument --plot: expected a .png, .pdf, .svg or .jpg file"),
    (["bench", "--repeat", "0"], "argument --repeat: expected a positive int, got '0'"),
    (["bench", "--min-time", "-1"], "argument --min-time: expected a number of seconds > 0, got '-1'"),
    (["bench", "--truncate", "-2"], "argument --truncate: expected an int >= 0, got '-2'"),
    (["bench", "--blas-threads", "0"], "argument --blas-threads: expected a positive int, got '0'"),
], ids=lambda a: " ".join(a) if isinstance(a, list) else None)
def test_bad_options_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_plot_without_a_suffix_writes_and_reports_a_png(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "binary-addition", "--epochs", "1", "--plot", "loss", "--no-progress"]) == 0
    assert "learning curves written to loss.png" in capsys.readouterr().out
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "loss").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastrnn {fastrnn.__version__}"


def test_the_installed_package_wins_over_a_folder_named_fastrnn(tmp_path):
    """Run from the parent of a clone (a folder named fastrnn, as git names it), Python must
    import the installed fastrnn, not the folder as an empty namespace package: the README's
    editable install puts the clone itself on the path (``editable_mode=compat``), and a
    regular install copies the package."""
    (tmp_path / "fastrnn").mkdir()
    (tmp_path / "fastrnn" / "README.md").write_text("a clone's folder\n")
    result = subprocess.run([sys.executable, "-c", "import fastrnn; print(fastrnn.RNN.__name__)"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "RNN"


def test_info_prints_what_a_bug_report_needs(capsys):
    import numba
    import numpy
    import scipy

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for needed in (f"fastrnn {fastrnn.__version__}", f"NumPy {numpy.__version__}", f"Numba {numba.__version__}",
                   f"SciPy {scipy.__version__}", "Python ", "CPU: ", "kernels compiled for: ", "-byte vectors",
                   "Numba threads: ", "Numba cache: "):
        assert needed in out, (needed, out)
