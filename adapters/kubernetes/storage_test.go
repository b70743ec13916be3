package kubernetes_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/adapters/kubernetes"
	"github.com/nocobot/nocobot/internal/kubetest"
)

// The storage helper pod against the real API server, with nocobot's
// Role only: the folder read as a tar under its own name, a tar unpacked
// into it, a failing command's exit code and error output, a folder on no
// volume refused without a pod, and no helper pod left after any of them.
func TestKubernetesStorageHelperPod(t *testing.T) {
	c := kubetest.NewCluster(t, 1, "1.7.13")
	for name, body := range map[string]string{"uploads/a.txt": "first", ".data/b.json": `{"b":1}`} {
		p := filepath.Join(c.StorageDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	client, err := kubernetes.Connect(kubernetes.Options{Kubeconfig: c.Kubeconfig, Namespace: c.Namespace, Deployment: "nocobase", Container: "nocobase", StartTimeout: time.Minute}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	st := kubernetes.NewStorage(client)
	name := client.StorageName()
	const dir = "/app/nocobase/storage"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	rc, err := st.CopyFrom(ctx, name, dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		got[hdr.Name] = string(b)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if got["storage/uploads/a.txt"] != "first" || got["storage/.data/b.json"] != `{"b":1}` || len(got) != 5 {
		t.Fatalf("CopyFrom gave %v, want the two files and three folders under storage/", got)
	}
	wantNoHelpers(t, c)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "restored/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "restored/x.txt", Typeflag: tar.TypeReg, Mode: 0o600, Size: 5})
	tw.Write([]byte("hello"))
	tw.Close()
	if err := st.CopyTo(ctx, name, dir, &buf); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(c.StorageDir, "restored/x.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("after CopyTo the claim holds %q (%v), want hello", b, err)
	}

	err = st.RunWithVolumesOf(ctx, name, dir, []string{"/bin/sh", "-c", `test -d "$1" && echo "no room in $1" >&2; exit 3`, "nocobot", dir})
	if err == nil || !strings.Contains(err.Error(), "exit code 3") || !strings.Contains(err.Error(), "no room in") {
		t.Fatalf("a failing command gave %v, want its exit code and error output", err)
	}
	wantNoHelpers(t, c)

	err = st.RunWithVolumesOf(ctx, name, "/app/elsewhere", []string{"true"})
	if err == nil || !strings.Contains(err.Error(), "/app/elsewhere is not on a volume") {
		t.Fatalf("a folder on no volume gave %v", err)
	}
	if err := st.CheckStorage(ctx, name, "/app/elsewhere"); err == nil {
		t.Fatal("CheckStorage accepted a folder on no volume")
	}
	if err := st.CheckStorage(ctx, name, dir); err != nil {
		t.Fatal(err)
	}

	// A reader closed half-way (a backup that failed) ends the pod too.
	rc, err = st.CopyFrom(ctx, name, dir)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadFull(rc, make([]byte, 512))
	rc.Close()
	wantNoHelpers(t, c)
}

func wantNoHelpers(t *testing.T, c *kubetest.Cluster) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.CP.Admin.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelHelper})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("%d helper pods left (%s)", len(list.Items), list.Items[0].Name)
	}
}
