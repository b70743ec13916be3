package redis

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// scanBatch is how many keys one SCAN asks for and one UNLINK deletes.
const scanBatch = 500

// Describe says which Redis databases the cluster uses and what nocobot
// does with each, passwords redacted: "none" without any.
func (m *Manager) Describe(ctx context.Context) string {
	dbs, err := m.resolve(ctx)
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if len(dbs) == 0 {
		return "none"
	}
	var lines []string
	for _, t := range dbs {
		var does []string
		if pats := m.resetPatterns(t); len(pats) > 0 {
			does = append(does, "keys "+strings.Join(pats, ", ")+" deleted while every node is stopped")
		}
		if slices.Contains(t.roles, RoleQueue) {
			does = append(does, "queue keys "+strings.Join(m.patterns(RoleQueue), ", ")+" saved with each backup and put back by its restore")
		}
		if len(does) == 0 {
			does = append(does, "left alone (no key patterns)")
		}
		lines = append(lines, describeTarget(t)+": "+strings.Join(does, "; "))
	}
	return strings.Join(lines, "\n  ")
}

// Check connects to every database and checks that a Reset would not be
// refused; it says what it found. Nothing is changed.
func (m *Manager) Check(ctx context.Context) (string, error) {
	dbs, err := m.resolve(ctx)
	if err != nil {
		return "", err
	}
	if len(dbs) == 0 {
		return "none", nil
	}
	if dbs, err = m.merge(ctx, dbs); err != nil {
		return "", err
	}
	var found []string
	for _, t := range dbs {
		c, err := m.conn(ctx, t)
		if err != nil {
			return "", err
		}
		cctx, cancel := m.call(ctx)
		err = c.Ping(cctx).Err()
		cancel()
		if err != nil {
			return "", fmt.Errorf("redis %s unreachable: %w", describeTarget(t), err)
		}
		if err := m.checkWhole(ctx, t); err != nil {
			return "", err
		}
		found = append(found, describeTarget(t))
	}
	return "reachable: " + strings.Join(found, ", "), nil
}

// resetPatterns are the patterns of the keys Reset deletes in t: the
// cache's, the locks', the pub/sub signals' and the worker ids'.
func (m *Manager) resetPatterns(t *target) []string {
	var pats []string
	for _, r := range t.roles {
		if r == RoleQueue {
			continue
		}
		if m.opts.Whole[r] {
			pats = append(pats, m.opts.App+":*", m.opts.App+".*")
			continue
		}
		pats = append(pats, m.patterns(r)...)
	}
	slices.Sort(pats)
	return slices.Compact(pats)
}

// keep returns a test for the keys in t that Reset must not delete: the
// queue's, where the queue shares the database.
func (m *Manager) keep(t *target) func(string) bool {
	if !slices.Contains(t.roles, RoleQueue) {
		return func(string) bool { return false }
	}
	var res []*regexp.Regexp
	for _, p := range m.patterns(RoleQueue) {
		res = append(res, globRE(p))
	}
	return func(k string) bool {
		return slices.ContainsFunc(res, func(re *regexp.Regexp) bool { return re.MatchString(k) })
	}
}

// Reset empties the app's cache, drops its locks, pub/sub signals and
// (where configured) worker ids, in every database; the queue's keys stay.
// It is meant for while every node is stopped, and may be repeated: a
// Reset cut short leaves keys that the next one deletes. A database said
// to be NocoBase's alone that holds other keys is refused before anything
// is deleted anywhere.
func (m *Manager) Reset(ctx context.Context, progress func(string)) (string, error) {
	if progress == nil {
		progress = func(string) {}
	}
	dbs, err := m.resolve(ctx)
	if err != nil {
		return "", err
	}
	if len(dbs) == 0 {
		return "none", nil
	}
	if dbs, err = m.merge(ctx, dbs); err != nil {
		return "", err
	}
	for _, t := range dbs {
		if err := m.checkWhole(ctx, t); err != nil {
			return "", err
		}
	}
	var done []string
	for _, t := range dbs {
		pats := m.resetPatterns(t)
		if len(pats) == 0 {
			done = append(done, describeTarget(t)+": left alone")
			continue
		}
		progress("redis: deleting " + strings.Join(pats, ", ") + " in " + describeTarget(t))
		n, err := m.deleteMatching(ctx, t, pats, m.keep(t))
		if err != nil {
			return "", fmt.Errorf("redis %s: %w (%d keys deleted so far; a retry deletes the rest)", describeTarget(t), err, n)
		}
		left, err := m.dbSize(ctx, t)
		if err != nil {
			return "", fmt.Errorf("redis %s: %w", describeTarget(t), err)
		}
		m.log.Info().Str("database", t.shown).Strs("patterns", pats).Int("deleted", n).Int64("left", left).Msg("redis keys deleted")
		done = append(done, fmt.Sprintf("%s: %s deleted (%s), %s of others left", describeTarget(t), nkeys(n), strings.Join(pats, ", "), nkeys(int(left))))
	}
	return strings.Join(done, "; "), nil
}

// checkWhole refuses a database said to be NocoBase's alone (Whole) that
// holds a key without the app's prefix.
func (m *Manager) checkWhole(ctx context.Context, t *target) error {
	if !slices.ContainsFunc(t.roles, func(r Role) bool { return m.opts.Whole[r] }) {
		return nil
	}
	c, err := m.conn(ctx, t)
	if err != nil {
		return err
	}
	var foreign int
	var example string
	var cursor uint64
	for {
		cctx, cancel := m.call(ctx)
		keys, next, err := c.Scan(cctx, cursor, "", scanBatch).Result()
		cancel()
		if err != nil {
			return fmt.Errorf("redis %s: scan: %w", describeTarget(t), err)
		}
		for _, k := range keys {
			if !strings.HasPrefix(k, m.opts.App+":") && !strings.HasPrefix(k, m.opts.App+".") {
				foreign++
				if example == "" {
					example = k
				}
			}
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	if foreign > 0 {
		if len(example) > 40 {
			example = example[:40] + "…"
		}
		return fmt.Errorf("redis %s is configured as NocoBase's alone (redis.whole) but holds %d keys without the app's prefix %q (e.g. %q): nothing was changed; remove it from redis.whole to touch the app's keys alone", describeTarget(t), foreign, m.opts.App, example)
	}
	return nil
}

// deleteMatching deletes the keys of t that match pats (except those keep
// says) and returns how many it deleted.
func (m *Manager) deleteMatching(ctx context.Context, t *target, pats []string, keep func(string) bool) (int, error) {
	c, err := m.conn(ctx, t)
	if err != nil {
		return 0, err
	}
	deleted := 0
	err = m.scan(ctx, c, pats, func(keys []string) error {
		keys = slices.DeleteFunc(keys, keep)
		if len(keys) == 0 {
			return nil
		}
		cctx, cancel := m.call(ctx)
		n, err := c.Unlink(cctx, keys...).Result()
		cancel()
		deleted += int(n)
		return err
	})
	return deleted, err
}

// scan calls fn with the keys matching each pattern, a batch at a time.
// A key may come twice (SCAN's promise); fn must not mind.
func (m *Manager) scan(ctx context.Context, c *goredis.Client, pats []string, fn func([]string) error) error {
	for _, p := range pats {
		var cursor uint64
		for {
			cctx, cancel := m.call(ctx)
			keys, next, err := c.Scan(cctx, cursor, p, scanBatch).Result()
			cancel()
			if err != nil {
				return fmt.Errorf("scan %s: %w", p, err)
			}
			if len(keys) > 0 {
				if err := fn(keys); err != nil {
					return err
				}
			}
			if cursor = next; cursor == 0 {
				break
			}
		}
	}
	return nil
}

func (m *Manager) dbSize(ctx context.Context, t *target) (int64, error) {
	c, err := m.conn(ctx, t)
	if err != nil {
		return 0, err
	}
	cctx, cancel := m.call(ctx)
	defer cancel()
	return c.DBSize(cctx).Result()
}

// globRE turns a Redis glob (*, ?, [...], \x) into a regular expression.
func globRE(glob string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`^`)
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(`(?s:.*)`)
		case '?':
			b.WriteString(`(?s:.)`)
		case '\\':
			if i+1 < len(glob) {
				i++
				b.WriteString(regexp.QuoteMeta(glob[i : i+1]))
			}
		case '[':
			j := strings.IndexByte(glob[i:], ']')
			if j < 0 {
				b.WriteString(`\[`)
				continue
			}
			class := glob[i+1 : i+j]
			if strings.HasPrefix(class, "^") {
				class = "^" + regexp.QuoteMeta(class[1:])
			} else {
				class = regexp.QuoteMeta(class)
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\-`, `-`) + "]")
			i += j
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// nkeys is "1 key" or "n keys".
func nkeys(n int) string {
	if n == 1 {
		return "1 key"
	}
	return fmt.Sprintf("%d keys", n)
}
