package schedule

import (
	"context"
	"strings"
	"time"

	"github.com/nocobot/nocobot/store"
)

// noticeKeep is how long a notice's claim outlives the moment after which
// the notice can no longer be due: room for the replicas' clocks to
// disagree and for a replica that was slow to look.
const noticeKeep = 24 * time.Hour

// claimNotice decides which of several replicas (or processes on one
// SQLite file) posts a notice that each of them may find due, such as the
// approval request of a start that none of them has asked yet: the first
// claim of key wins. The claim is made before the post, so after a
// crash in between the notice is lost rather than posted twice. due is
// when the notice stops being due; the claim is kept until well after it.
// An error leaves it unknown whether the claim was taken: claiming again
// later never posts twice.
func (s *Scheduler) claimNotice(ctx context.Context, key string, due, now time.Time) (bool, error) {
	return s.store.SeenOnce(ctx, key, max(due.Sub(now), 0)+noticeKeep)
}

// windowNotice is the key of one notice about one start of a window. The
// window's creation time tells a window removed and added again under the
// same id from the one before.
func windowNotice(kind string, w store.Window, start time.Time) string {
	return strings.Join([]string{"schedule", kind, w.ID, w.Created.UTC().Format(time.RFC3339Nano), start.UTC().Format(time.RFC3339Nano)}, "/")
}
