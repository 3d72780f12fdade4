"""``python -m deepdive`` runs the same CLI as the ``deepdive`` console script."""
from deepdive.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
