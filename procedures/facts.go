package procedures

import (
	"maps"
	"strings"
	"time"

	"github.com/nocobot/nocobot/ports"
	"github.com/nocobot/nocobot/store"
)

// The keys under which a run records what it learned. Only this file
// spells them: everything else reads Facts and writes through factWriter.
const (
	factFirstNode     = "first_node"
	factFirstURL      = "first_url"
	factPrevImage     = "image:" // + node name
	factTargetImage   = "target_image"
	factFromVersion   = "from_version"
	factBackup        = "backup"
	factBackupTaken   = "backup_taken"
	factBackupKind    = "backup_kind"   // BackupCopy or BackupDump
	factExported      = "backup_export" // the portable dump's backup id, once exported
	factDowntimeStart = "downtime_start"
	factDowntimeEnd   = "downtime_end"
	factFinalState    = "final_state"
	factNodes         = "nodes"   // comma-separated, recorded at preflight
	factPrevDigest    = "digest:" // + node name
	factTargetDigest  = "target_digest"
	factTargetVersion = "target_version" // "" until known for a floating tag
	factToVersion     = "to_version"     // what the first upgraded node reported
)

// Facts is a read-only view of what a run has learned on its way: the
// node started first, the images it came from, its backup, its downtime.
type Facts struct{ m map[string]string }

// FactsOf reads a run's facts.
func FactsOf(r store.Run) Facts { return Facts{m: r.Facts} }

// FirstNode is the node that starts alone.
func (f Facts) FirstNode() string { return f.m[factFirstNode] }

// FirstURL is the first node's address, for the person who verifies.
func (f Facts) FirstURL() string { return f.m[factFirstURL] }

// PrevImage is the image node ran before the run changed it.
func (f Facts) PrevImage(node string) string { return f.m[factPrevImage+node] }

// Nodes are the run's nodes, recorded at preflight, in order.
func (f Facts) Nodes() []string {
	if f.m[factNodes] == "" {
		return nil
	}
	return strings.Split(f.m[factNodes], ",")
}

// PrevDigest is the digest of the image node ran before the run.
func (f Facts) PrevDigest(node string) string { return f.m[factPrevDigest+node] }

// TargetDigest is the digest the target image resolved to at preflight.
func (f Facts) TargetDigest() string { return f.m[factTargetDigest] }

// TargetVersion is the NocoBase version the target image holds: from its
// tag or metadata, or "" until a node started on it reports it.
func (f Facts) TargetVersion() string { return f.m[factTargetVersion] }

// ToVersion is the version the first node reported on the target image.
func (f Facts) ToVersion() string { return f.m[factToVersion] }

// TargetImage is the image an upgrade moves every node to.
func (f Facts) TargetImage() string { return f.m[factTargetImage] }

// FromVersion is the NocoBase version the cluster ran before the run.
func (f Facts) FromVersion() string { return f.m[factFromVersion] }

// BackupID is the backup the run took, "" before it took one.
func (f Facts) BackupID() string { return f.m[factBackup] }

// BackupKind is the kind of the run's backup, "" if unknown.
func (f Facts) BackupKind() string { return f.m[factBackupKind] }

// Exported says the run's in-server copy was exported to a dump.
func (f Facts) Exported() bool { return f.m[factExported] != "" }

// BackupTaken is when the run's backup was taken.
func (f Facts) BackupTaken() (time.Time, bool) { return f.time(factBackupTaken) }

// DowntimeStart is when traffic went to the maintenance page.
func (f Facts) DowntimeStart() (time.Time, bool) { return f.time(factDowntimeStart) }

// DowntimeEnd is when traffic went back to the app nodes.
func (f Facts) DowntimeEnd() (time.Time, bool) { return f.time(factDowntimeEnd) }

// FinalState describes the cluster as the run left it.
func (f Facts) FinalState() string { return f.m[factFinalState] }

func (f Facts) time(k string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, f.m[k])
	return t, err == nil
}

// factWriter records facts on a run the caller may change.
type factWriter struct{ r *store.Run }

func (w factWriter) setFirstNode(n ports.Node) {
	w.r.SetFact(factFirstNode, n.Name)
	w.r.SetFact(factFirstURL, n.URL)
}

// keepPrevImage records a node's image unless one is recorded already:
// the first record is where the node came from.
func (w factWriter) keepPrevImage(node, image string) {
	if w.r.Fact(factPrevImage+node) == "" {
		w.r.SetFact(factPrevImage+node, image)
	}
}

func (w factWriter) setTargetImage(image string) { w.r.SetFact(factTargetImage, image) }

// keepNodes records the run's nodes unless they are recorded already.
func (w factWriter) keepNodes(nodes []ports.Node) {
	if w.r.Fact(factNodes) != "" {
		return
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.Name
	}
	w.r.SetFact(factNodes, strings.Join(names, ","))
}

// keepPrevDigest records a node's image digest unless one is recorded.
func (w factWriter) keepPrevDigest(node, digest string) {
	if w.r.Fact(factPrevDigest+node) == "" && digest != "" {
		w.r.SetFact(factPrevDigest+node, digest)
	}
}

func (w factWriter) setTarget(digest, version string) {
	w.r.SetFact(factTargetDigest, digest)
	w.r.SetFact(factTargetVersion, version)
}

func (w factWriter) setToVersion(v string)   { w.r.SetFact(factToVersion, v) }
func (w factWriter) setFromVersion(v string) { w.r.SetFact(factFromVersion, v) }
func (w factWriter) setBackup(id string, taken time.Time) {
	w.r.SetFact(factBackup, id)
	w.r.SetFact(factBackupTaken, taken.UTC().Format(time.RFC3339Nano))
}
func (w factWriter) setBackupKind(kind string) { w.r.SetFact(factBackupKind, kind) }
func (w factWriter) setExported(id string)     { w.r.SetFact(factExported, id) }
func (w factWriter) setFinalState(s string)    { w.r.SetFact(factFinalState, s) }

// markDowntimeStart keeps the first switch to the maintenance page.
func (w factWriter) markDowntimeStart(t time.Time) {
	if w.r.Fact(factDowntimeStart) == "" {
		w.r.SetFact(factDowntimeStart, t.UTC().Format(time.RFC3339Nano))
	}
}

// markDowntimeEnd records traffic back, if it ever went away.
func (w factWriter) markDowntimeEnd(t time.Time) {
	if w.r.Fact(factDowntimeStart) != "" {
		w.r.SetFact(factDowntimeEnd, t.UTC().Format(time.RFC3339Nano))
	}
}

func cloneFacts(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	return maps.Clone(m)
}
