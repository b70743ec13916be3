// Package buildinfo says which nocobot this is: the version and commit set
// at link time (the image and release builds), or else what the Go
// toolchain recorded in the binary (go build and go install from a clone or
// from the module proxy).
package buildinfo

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Set with -ldflags "-X github.com/nocobot/nocobot/internal/buildinfo.version=v1.2.0
// -X github.com/nocobot/nocobot/internal/buildinfo.commit=<sha>". They are
// package variables only because the linker can set nothing else; nothing
// assigns them at run time.
var (
	version string
	commit  string
	date    string
)

// Info describes a build.
type Info struct {
	Version  string // e.g. "v1.2.0", or "dev" when nothing says
	Commit   string // full revision, "" when unknown
	Modified bool   // built from a work tree with uncommitted changes
	Date     string // commit or build time (RFC 3339), "" when unknown
	Go       string // toolchain, e.g. "go1.26.8"
}

// Get returns this binary's build information.
func Get() Info {
	return resolve(version, commit, date, debug.ReadBuildInfo)
}

// resolve prefers the link-time values and fills the gaps from the
// toolchain's record: the module version (set by go install …@v1.2.0) and
// the VCS stamp (set by go build in a clone, unless -buildvcs=false).
func resolve(ldVersion, ldCommit, ldDate string, read func() (*debug.BuildInfo, bool)) Info {
	info := Info{Version: ldVersion, Commit: ldCommit, Date: ldDate}
	bi, ok := read()
	if ok && bi != nil {
		info.Go = bi.GoVersion
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		if ldCommit == "" {
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					info.Commit = s.Value
				case "vcs.modified":
					info.Modified = s.Value == "true"
				case "vcs.time":
					if info.Date == "" {
						info.Date = s.Value
					}
				}
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// ShortCommit is the commit's first 12 characters.
func (i Info) ShortCommit() string {
	if len(i.Commit) > 12 {
		return i.Commit[:12]
	}
	return i.Commit
}

// String is the line `nocobot version` prints, e.g.
// "nocobot v1.2.0 (commit 0123456789ab, 2026-11-30T12:00:00Z, go1.26.8)".
func (i Info) String() string {
	var extra []string
	if i.Commit != "" {
		c := "commit " + i.Commit
		if i.Modified {
			c += " (modified)"
		}
		extra = append(extra, c)
	} else {
		extra = append(extra, "commit unknown")
	}
	if i.Date != "" {
		extra = append(extra, i.Date)
	}
	if i.Go != "" {
		extra = append(extra, i.Go)
	}
	return fmt.Sprintf("nocobot %s (%s)", i.Version, strings.Join(extra, ", "))
}
