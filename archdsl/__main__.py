"""`python -m archdsl`: the archdsl command (also under `torchrun ... -m archdsl train ...`)."""

if __name__ == "__main__":
    from .cli import run

    run()
