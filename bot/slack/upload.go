package slack

import (
	"context"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/nocobot/nocobot/store"
)

// uploadAttempts bounds the retries of one full-text upload.
const uploadAttempts = 4

// fileName is the name of the file that holds a message's full text.
func (t *thread) fileName(s *slot) string {
	return fmt.Sprintf("%s-%s.txt", t.runID, strings.NewReplacer(":", "-", "/", "-").Replace(s.key))
}

// cutTail ends a text cut to fit Slack: it says where the rest is.
func (t *thread) cutTail(s, root *slot) string {
	where := "in this thread"
	if s == root {
		where = "in this run's thread"
	}
	return fmt.Sprintf("…\n_Cut to fit Slack: the whole text is in the file `%s` %s; `nocobot attach %s` shows the run in full at a terminal._",
		t.fileName(s), where, t.runID)
}

// upload puts a message's full text into the thread as a file, so what
// was cut stays readable.
func (t *thread) upload(ctx context.Context, channel, rootTS string, s *slot, full string) {
	f := t.f
	name := t.fileName(s)
	err := f.calls.do(ctx, "files.uploadV2", uploadAttempts, func(ctx context.Context) error {
		_, err := f.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Filename: name, Title: "Full text: run " + t.runID + ", " + s.key,
			Content: full, FileSize: len(full), Channel: channel, ThreadTimestamp: rootTS,
		})
		return err
	})
	if err != nil {
		f.log.Warn().Err(err).Str("run", t.runID).Str("file", name).Msg("slack: could not upload the full text of a cut message")
	}
}

// decidersLine says who may answer a run's checkpoint: the users and
// groups of the access rules as mentions (so they are notified), and
// under the four-eyes rule that the requester may not continue.
func (f *Front) decidersLine(r store.Run, cp store.Checkpoint) string {
	d := f.disp.Deciders(r, cp)
	if d.Nobody() {
		return "Who decides: nobody is listed under access.decide; an admin must add someone, or decide with `nocobot decide` at a terminal."
	}
	var who []string
	for _, u := range d.Users {
		who = append(who, mention(u))
	}
	for _, g := range d.Groups {
		who = append(who, groupMention(g))
	}
	line := "Who decides: " + strings.Join(who, ", ")
	if d.NotRequester != "" {
		line += " — anyone but " + mention(d.NotRequester) + " may continue (four-eyes rule)"
	}
	return line
}
