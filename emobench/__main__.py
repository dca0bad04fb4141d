"""``python -m emobench``: the command line, for launchers that start a module
(``torchrun -m emobench run ...``, ``accelerate launch -m emobench run ...``)."""

from emobench.cli import app

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="emobench")
