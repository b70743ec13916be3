package testenv

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut remembers every port FreePort gave this test process: the
// kernel may give a port that was just closed to the next bind, so two
// endpoints asked for one after the other could otherwise share a port.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback TCP port that was free a moment ago and that
// this process has not handed out before. With host networking every test
// node needs its own.
func FreePort(t testing.TB) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 1000 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port
		}
	}
	t.Fatal("no loopback port left that this test process has not used")
	return 0
}

// FreeAddr is FreePort as a host:port address on the loopback interface.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))
}
