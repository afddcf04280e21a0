import sys

from .cli import main

if __name__ == "__main__":  # a guard: spawned worker processes import this module too
    sys.exit(main())
