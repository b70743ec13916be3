package kubernetes_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/kubernetes"
	"github.com/nocobot/nocobot/internal/kubetest"
)

// Reading the storage folder (NOCOBOT_BENCH_STORAGE_MB, default 256, in
// 1 MiB files) through the API server: nocobot's CopyFrom, which creates
// the helper pod, streams tar through pods/exec and deletes the pod,
// beside what an operator would run by hand, kubectl exec of the same
// tar in a running NocoBase pod (NOCOBOT_BENCH_KUBECTL names a kubectl;
// without it that half is skipped).
func BenchmarkKubernetesStorageRead(b *testing.B) {
	mb := 256
	if v := os.Getenv("NOCOBOT_BENCH_STORAGE_MB"); v != "" {
		fmt.Sscan(v, &mb)
	}
	c := kubetest.NewCluster(b, 1, "1.7.13")
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for i := range mb {
		p := filepath.Join(c.StorageDir, "uploads", fmt.Sprintf("%03d", i/100), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	size := int64(mb) << 20
	client, err := kubernetes.Connect(kubernetes.Options{Kubeconfig: c.Kubeconfig, Namespace: c.Namespace, Deployment: "nocobase", Container: "nocobase"}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	st := kubernetes.NewStorage(client)

	b.Run("nocobot-helper-pod", func(b *testing.B) {
		b.SetBytes(size)
		for range b.N {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			rc, err := st.CopyFrom(ctx, client.StorageName(), "/app/nocobase/storage")
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
			cancel()
			if err != nil || n < size {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
	})

	kubectl := os.Getenv("NOCOBOT_BENCH_KUBECTL")
	b.Run("kubectl-exec-tar", func(b *testing.B) {
		if kubectl == "" {
			b.Skip("NOCOBOT_BENCH_KUBECTL names no kubectl")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pods, err := c.CP.Admin.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=nocobase"})
		cancel()
		if err != nil || len(pods.Items) == 0 {
			b.Fatalf("no NocoBase pod (%v)", err)
		}
		pod := pods.Items[0].Name
		b.SetBytes(size)
		for range b.N {
			cmd := exec.Command(kubectl, "--kubeconfig", c.Kubeconfig, "-n", c.Namespace, "exec", pod, "-c", "nocobase", "--",
				"tar", "-cf", "-", "-C", "/app/nocobase/storage", ".")
			out, err := cmd.StdoutPipe()
			if err != nil {
				b.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, out)
			if err := cmd.Wait(); err != nil || n < size {
				b.Fatalf("%d bytes, %v", n, err)
			}
		}
	})
}
