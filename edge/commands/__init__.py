"""One module per `edge` subcommand, each with `add_parser(sub)`; `edge.cli` finds them all."""
