"""``python -m advlab`` (also what ``torchrun ... -m advlab`` runs)."""
from advlab.cli import main

if __name__ == "__main__":
    main()
