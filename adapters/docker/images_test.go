package docker

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/rs/zerolog"

	"github.com/nocobot/nocobot/internal/testenv"
)

func TestPullPolicyByTag(t *testing.T) {
	tests := []struct{ configured, image, want string }{
		{PullAuto, "nocobase/nocobase:1.7.14", PullMissing},
		{PullAuto, "nocobase/nocobase:1.7.14-full", PullMissing},
		{PullAuto, "registry.example.com/team/nocobase:2026-11-30", PullMissing},
		{PullAuto, "nocobase/nocobase@sha256:" + strings.Repeat("a", 64), PullMissing},
		{PullAuto, "nocobase/nocobase:latest", PullAlways},
		{PullAuto, "nocobase/nocobase:latest-full", PullAlways},
		{PullAuto, "nocobase/nocobase:beta", PullAlways},
		{PullAuto, "nocobase/nocobase:alpha-full", PullAlways},
		{PullAuto, "nocobase/nocobase", PullAlways},
		{PullAlways, "nocobase/nocobase:1.7.14", PullAlways},
		{PullNever, "nocobase/nocobase:latest", PullNever},
		{PullMissing, "nocobase/nocobase:beta", PullMissing},
	}
	for _, tt := range tests {
		ref, err := reference.ParseNormalizedNamed(tt.image)
		if err != nil {
			t.Fatal(err)
		}
		if got := pullPolicyFor(tt.configured, ref); got != tt.want {
			t.Errorf("policy %q, image %s: %q, want %q", tt.configured, tt.image, got, tt.want)
		}
	}
	if _, err := NewContainers(Options{Labels: map[string]string{"a": "b"}, PullPolicy: "sometimes"}, zerolog.Nop()); err == nil ||
		!strings.Contains(err.Error(), `pull policy "sometimes"`) {
		t.Errorf("bad policy accepted: %v", err)
	}
}

// TestPullResolveAndPinWithARegistry runs the pull policies, Resolve and
// SetImage by digest against a real registry protocol (a registry of the
// test's own on loopback) and the real engine.
func TestPullResolveAndPinWithARegistry(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	v1, v2 := testenv.NodeImage(t, host, "1.0.0"), testenv.NodeImage(t, host, "2.0.0")
	v1ID := testenv.Docker(t, host, "image", "inspect", "--format", "{{.Id}}", v1)
	v2ID := testenv.Docker(t, host, "image", "inspect", "--format", "{{.Id}}", v2)
	reg := testenv.NewRegistry(t)
	repo := "team/nocobase"
	d1 := reg.Push(t, host, v1, repo, "latest")
	d2 := reg.Push(t, host, v2, repo, "2.0.0")
	exact, floating := reg.Host+"/"+repo+":2.0.0", reg.Host+"/"+repo+":latest"
	t.Cleanup(func() { testenv.RemoveImages(host, exact, floating) })
	tc := newTestCluster(t, 1, "1.0.0", nil, nil)
	ctx := ctxT(t)
	var msgs []string
	progress := func(m string) { msgs = append(msgs, m) }
	asked := func(f func()) bool {
		n := reg.Requests.Load()
		f()
		return reg.Requests.Load() != n
	}

	// An exact tag that is not on the engine is pulled; once there, it is
	// used as it is without asking the registry.
	if !asked(func() {
		if err := tc.Pull(ctx, exact, progress); err != nil {
			t.Fatal(err)
		}
	}) {
		t.Error("an absent image was not pulled")
	}
	if asked(func() {
		msgs = nil
		if err := tc.Pull(ctx, exact, progress); err != nil {
			t.Fatal(err)
		}
	}) || len(msgs) != 1 || !strings.Contains(msgs[0], "already on the engine") {
		t.Errorf("an exact tag on the engine was pulled again (progress %q)", msgs)
	}
	info, err := tc.Resolve(ctx, exact)
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != v2ID || info.Digest != d2 || info.Pinned != reg.Host+"/"+repo+"@"+d2 || info.Version != "2.0.0" || info.Floating {
		t.Errorf("Resolve(%s) = %+v; want id %s, digest %s, version 2.0.0", exact, info, v2ID, d2)
	}

	// A floating tag is asked for every time, and follows the registry.
	if err := tc.Pull(ctx, floating, nil); err != nil {
		t.Fatal(err)
	}
	if info, err := tc.Resolve(ctx, floating); err != nil || info.Digest != d1 || info.ID != v1ID || !info.Floating || info.Version != "1.0.0" {
		t.Errorf("Resolve(latest) = %+v, %v; want v1 (%s)", info, err, d1)
	}
	reg.Tag(t, repo, "latest", d2)
	if !asked(func() {
		if err := tc.Pull(ctx, floating, nil); err != nil {
			t.Fatal(err)
		}
	}) {
		t.Error("a floating tag on the engine was not asked for again")
	}
	if info, err := tc.Resolve(ctx, floating); err != nil || info.Digest != d2 || info.ID != v2ID {
		t.Errorf("after latest moved, Resolve(latest) = %+v, %v; want v2 (%s)", info, err, d2)
	}

	// never: the registry is never asked; an absent image is named.
	tc.opts.PullPolicy = PullNever
	missing := reg.Host + "/" + repo + ":9.9.9"
	var pullErr error
	if asked(func() { pullErr = tc.Pull(ctx, missing, nil) }) {
		t.Error("policy never asked the registry")
	}
	if pullErr == nil || !strings.Contains(pullErr.Error(), missing) || !strings.Contains(pullErr.Error(), "never") {
		t.Errorf("never, image absent: %v", pullErr)
	}
	if asked(func() { pullErr = tc.Pull(ctx, floating, nil) }) || pullErr != nil {
		t.Errorf("never, image present: %v", pullErr)
	}

	// SetImage by digest: the node runs exactly that image, and says so.
	name := tc.names[0]
	if err := tc.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := tc.SetImage(ctx, name, info.Pinned); err != nil {
		t.Fatal(err)
	}
	if ci := tc.inspect(t, name); ci.Image != v2ID || ci.Config.Image != info.Pinned {
		t.Errorf("node on %s (%s), want %s (%s)", ci.Image, ci.Config.Image, v2ID, info.Pinned)
	}
	nodes, err := tc.List(ctx)
	if err != nil || len(nodes) != 1 || nodes[0].Digest != d2 {
		t.Errorf("List after SetImage by digest: %+v %v; want digest %s", nodes, err, d2)
	}
	if err := tc.Start(ctx, name); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, tc.nodes[0].URL)
	if _, body := get(tc.nodes[0].URL + "/api/app:getInfo"); !strings.Contains(body, `"version":"2.0.0"`) {
		t.Errorf("app:getInfo: %s", body)
	}
}

// TestResolveRefusesAnotherPlatform loads an image built for another CPU
// architecture than the engine's (as a `docker load` of the wrong file
// would) and checks that Resolve, which preflight calls before the
// downtime, refuses it and names both platforms.
func TestResolveRefusesAnotherPlatform(t *testing.T) {
	t.Parallel()
	host := testenv.DockerHost(t)
	engineArch := strings.TrimSpace(testenv.Docker(t, host, "version", "--format", "{{.Server.Arch}}"))
	foreign := "arm64"
	if engineArch == "arm64" {
		foreign = "amd64"
	}
	ref := fmt.Sprintf("nocobot-test/foreign:%s-%d", foreign, os.Getpid())
	testenv.Docker(t, host, "load", "-i", foreignImage(t, ref, foreign))
	t.Cleanup(func() { testenv.RemoveImages(host, ref) })
	if got := strings.TrimSpace(testenv.Docker(t, host, "image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", ref)); got != "linux/"+foreign {
		t.Fatalf("the imported image is %s, want linux/%s", got, foreign)
	}
	native := testenv.NodeImage(t, host, "1.0.0")
	tc := newTestCluster(t, 1, "1.0.0", nil, nil)
	ctx := ctxT(t)
	if _, err := tc.Resolve(ctx, native); err != nil {
		t.Fatalf("Resolve(%s) on its own platform: %v", native, err)
	}
	_, err := tc.Resolve(ctx, ref)
	if err == nil {
		t.Fatalf("Resolve(%s) accepted an image for linux/%s on a linux/%s engine", ref, foreign, engineArch)
	}
	for _, want := range []string{ref, "built for linux/" + foreign, "engine runs linux/" + engineArch, "exec format error"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

// foreignImage writes an image archive as `docker save` makes it: one
// tiny layer, and a config that says linux/arch.
func foreignImage(t *testing.T, ref, arch string) string {
	t.Helper()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	lw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: 2, Typeflag: tar.TypeReg})
	lw.Write([]byte("hi"))
	lw.Close()
	diffID := fmt.Sprintf("sha256:%x", sha256.Sum256(layer.Bytes()))
	config, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux", "created": "2026-11-30T00:00:00Z",
		"config": map[string]any{"Cmd": []string{"/hello"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
	})
	configName := fmt.Sprintf("%x.json", sha256.Sum256(config))
	manifest, _ := json.Marshal([]map[string]any{{"Config": configName, "RepoTags": []string{ref}, "Layers": []string{"layer/layer.tar"}}})
	var archive bytes.Buffer
	aw := tar.NewWriter(&archive)
	for _, f := range []struct {
		name string
		data []byte
	}{{configName, config}, {"layer/layer.tar", layer.Bytes()}, {"manifest.json", manifest}} {
		aw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.data)), Typeflag: tar.TypeReg})
		aw.Write(f.data)
	}
	aw.Close()
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, archive.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
