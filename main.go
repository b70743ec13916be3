// Command nocobot runs NocoBase cluster maintenance procedures from Slack
// (serve) or a terminal (run, attach, shell and every word of /nocobase),
// step by step, with backups, a human checkpoint and a way back. The
// command line itself lives in package cli.
package main

import (
	"io"
	"os"

	"github.com/nocobot/nocobot/cli"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(args, stdin, stdout, stderr)
}
