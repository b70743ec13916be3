// Command printversion prints buildinfo.Get(), for the package's test of
// what go build records.
package main

import (
	"fmt"

	"github.com/nocobot/nocobot/internal/buildinfo"
)

func main() { fmt.Println(buildinfo.Get()) }
