package bot

import "context"

// Front is one way people reach the bot — a chat, say: it serves until
// ctx ends, rendering the runs (from RunView) and passing commands and
// answers to the Dispatcher, and it says whether people can reach it now
// (readiness). A new front is a package of its own plus its wiring in
// app; nothing else in the core knows it.
type Front interface {
	// Name is the front's name in readiness and logs, e.g. "slack".
	Name() string
	// Run serves until ctx ends; an error it returns stops serve.
	Run(ctx context.Context) error
	// Ready is nil while people can reach the bot through the front.
	Ready(ctx context.Context) error
}
