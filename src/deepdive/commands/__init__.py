"""One module per subcommand: ``HELP``, ``add_arguments(parser)`` (its flags) and ``run(args) -> exit code`` (the
call into the library). ``cli.py`` assembles the parser from them and dispatches. Nothing heavy is imported at
module level: ``deepdive --help`` stays fast."""
