"""``python -m cyclr``: the ``cyclr`` command."""

from .cli import main

if __name__ == "__main__":
    main()
