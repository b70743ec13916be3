package postgres

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nocobot/nocobot/events"
	"github.com/nocobot/nocobot/internal/testenv"
	"github.com/nocobot/nocobot/procedures/proctest"
	"github.com/nocobot/nocobot/store"
)

// tcpProxy stands between one replica and PostgreSQL. Frozen, it passes
// no byte either way and holds new connections, as a network that drops
// everything does: the replica's calls hang until their own timeouts.
type tcpProxy struct {
	l      net.Listener
	target string

	mu     sync.Mutex
	frozen bool
	thaw   chan struct{}
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{l: l, target: target, thaw: make(chan struct{})}
	close(p.thaw)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go func() {
			p.gate()
			up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
			if err != nil {
				c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go p.pipe(up, c)
			p.pipe(c, up)
		}()
	}
}

// gate waits while the proxy is frozen.
func (p *tcpProxy) gate() {
	p.mu.Lock()
	ch := p.thaw
	p.mu.Unlock()
	<-ch
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *tcpProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.frozen, p.thaw = true, make(chan struct{})
	}
}

func (p *tcpProxy) unfreeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		p.frozen = false
		close(p.thaw)
	}
}

func (p *tcpProxy) close() {
	p.unfreeze()
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// via returns dbURL with its host replaced by the proxy's address.
func (p *tcpProxy) via(t *testing.T, dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.l.Addr().String()
	return u.String()
}

// Two replicas on one PostgreSQL. Replica A's network to the database
// drops in the middle of its backup: A must stop its step before its
// lease can lapse, so that nothing A does comes after B's first action
// once B takes the run over.
func TestLapsedLeaseStopsItsHolderFirst(t *testing.T) {
	db := testenv.NewDatabase(t)
	u, err := url.Parse(db)
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	w := proctest.NewWorld(oldImage, true, "app-1", "app-2", "app-3")
	const ttl = 2 * time.Second
	opts := replicaOpts{leaseTTL: ttl, poll: 100 * time.Millisecond}
	a := startReplica(t, proxy.via(t, db), "A", w, opts)
	b := startReplica(t, db, "B", w, opts)

	blk := w.BlockOn("backup")
	r, err := a.eng.Start(testCtx(t), upgrade())
	if err != nil {
		t.Fatal(err)
	}
	<-blk.Reached
	proxy.freeze()
	cut := time.Now()

	// B takes the run over once A's lease has lapsed, repeats the backup
	// (safe to repeat) and goes on to the verify checkpoint.
	cp := b.waitFor("verify checkpoint on B", 30*time.Second, isCheckpoint("verify"))
	if cp.Run.ID != r.ID || cp.Run.Owner != "B" {
		t.Fatalf("checkpoint of run %s owned by %s", cp.Run.ID, cp.Run.Owner)
	}
	// A's network comes back: A finds B driving the run and stays out.
	blk.Release()
	proxy.unfreeze()
	time.Sleep(2 * ttl)
	if _, err := b.eng.Decide(context.Background(), store.Decision{RunID: r.ID, Checkpoint: cp.Run.Checkpoint.ID, Action: store.ActionContinue, By: "U2", Via: "test"}); err != nil {
		t.Fatal(err)
	}
	b.waitFor("end of run", 30*time.Second, isKind(events.RunFinished))
	checkUpgraded(t, w)

	if late := w.ActedAfterTakeover("A", "B"); len(late) > 0 {
		t.Fatalf("A acted after B took the run over: %+v\nlog: %+v", late, w.Log())
	}
	var aReturned, bFirst time.Time
	for _, e := range w.Log() {
		if e.Who == "A" && e.Action == "returned: backup" {
			aReturned = e.At
		}
		if e.Who == "B" && bFirst.IsZero() {
			bFirst = e.At
		}
	}
	t.Logf("cut at 0; A's backup cancelled at %s; B's first action at %s (lease %s)", aReturned.Sub(cut).Round(time.Millisecond), bFirst.Sub(cut).Round(time.Millisecond), ttl)
	if aReturned.IsZero() || aReturned.After(bFirst) {
		t.Fatalf("A's backup still ran when B began")
	}
	if n := count(w.Actions(), "backup"); n != 2 {
		t.Errorf("backup taken %d times, want 2 (A's, cut, and B's)", n)
	}
}
