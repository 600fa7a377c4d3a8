"""``python -m tem_rf <command> [flags]``: the same as the ``tem-rf`` command."""

from tem_rf.core.commands import main

if __name__ == "__main__":
    main()
