"""Run a command's main() in this process, as the experiments' tests do."""


def run(module, argv, capsys):
    """(exit code, stderr) of module.main(argv), in this process; ``capsys`` is pytest's fixture."""
    try:
        code = module.main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err
