package main

import (
	"context"
	"fmt"
	"io"
)

// run is the whole program behind main; tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	verb := "serve"
	if len(args) > 0 {
		verb, args = args[0], args[1:]
	}
	switch verb {
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	default:
		fmt.Fprintf(stderr, "fastapi-dls: unknown command %q\n", verb)
		return 2
	}
}
