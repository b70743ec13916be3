package docker

// Benchmarks for the closing note of issue 3. They need the engine:
//
//	scripts/test -run '^$' -bench . -benchtime 5x ./adapters/docker/

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

// BenchmarkReimageVsDockerCLI times, on the same engine, changing a
// node's image and starting it: the adapter (Stop, SetImage, Start) against
// what an operator types (docker stop, docker rm, docker run with the same
// flags). It reports both and their ratio.
func BenchmarkReimageVsDockerCLI(b *testing.B) {
	host := testenv.DockerHost(b)
	imgs := []string{testenv.NodeImage(b, host, "1.0.0"), testenv.NodeImage(b, host, "2.0.0")}
	port := testenv.FreePort(b)
	label := fmt.Sprintf("bench-%d", os.Getpid())
	runArgs := func(name, image string) []string {
		return []string{"run", "-d", "--name", name, "--network", "host", "--label", "nocobot.bench=" + label,
			"--label", fmt.Sprintf("nocobot.url=http://127.0.0.1:%d", port), "-e", fmt.Sprintf("NOCOBASE_LISTEN=127.0.0.1:%d", port),
			"-e", "APP_KEY=x", "-e", "DB_HOST=db", "--restart", "unless-stopped", image}
	}
	cli := func(args ...string) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+host)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("docker %s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	b.Cleanup(func() { testenv.RemoveLabelled(host, "nocobot.bench="+label) })

	name := "bench-node-" + label
	cli(runArgs(name, imgs[0])...)
	c, err := New(Options{EngineOptions: EngineOptions{Host: host}, Labels: map[string]string{"nocobot.bench": label}}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(b)

	var adapter, byHand time.Duration
	b.ResetTimer()
	for i := range b.N {
		next := imgs[(i+1)%2]
		t0 := time.Now()
		if err := c.Stop(ctx, name); err != nil {
			b.Fatal(err)
		}
		if err := c.SetImage(ctx, name, next); err != nil {
			b.Fatal(err)
		}
		if err := c.Start(ctx, name); err != nil {
			b.Fatal(err)
		}
		adapter += time.Since(t0)

		prev := imgs[i%2]
		t0 = time.Now()
		cli("stop", name)
		cli("rm", name)
		cli(runArgs(name, prev)...)
		byHand += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(adapter.Milliseconds())/float64(b.N), "adapter-ms/op")
	b.ReportMetric(float64(byHand.Milliseconds())/float64(b.N), "cli-ms/op")
	b.ReportMetric(float64(adapter)/float64(byHand), "ratio")
}

// BenchmarkExec1GB streams 1 GiB of a command's output through Exec and
// reports the throughput, how much the heap grew at its peak, and the
// test process's peak resident memory (all of it, test binary included).
func BenchmarkExec1GB(b *testing.B) {
	host := testenv.DockerHost(b)
	node := testenv.RunNode(b, host, testenv.NodeSpec{Image: testenv.NodeImage(b, host, "1.0.0")})
	e, err := NewEngine(EngineOptions{Host: host}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	// Not ctxT's two minutes: under -race 1 GiB takes about a minute per run.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	const size = 1 << 30
	b.SetBytes(size)
	var peakHeap uint64
	b.ResetTimer()
	for range b.N {
		var w countWriter
		var err error
		g := heapWatch(func() {
			err = e.Exec(ctx, node.Name, []string{"head", "-c", strconv.Itoa(size), "/dev/zero"}, nil, &w)
		})
		if err != nil {
			b.Fatal(err)
		}
		if w.n != size {
			b.Fatalf("got %d bytes", w.n)
		}
		peakHeap = max(peakHeap, g)
	}
	b.StopTimer()
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-growth-MB")
	b.ReportMetric(float64(vmHWM())/(1<<20), "peak-rss-MB")
}

// vmHWM is the process's peak resident set size in bytes.
func vmHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
