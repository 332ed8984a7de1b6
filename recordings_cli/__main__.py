"""`python -m recordings_cli`: the `recordings` command, for a checkout without the script."""

from recordings_cli.main import main

main(prog_name="recordings")
