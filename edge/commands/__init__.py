"""One module per `edge` subcommand; `edge.cli` builds the parser and dispatches."""
