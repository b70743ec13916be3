package kubernetes

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// Labels of the storage helper pods. They never carry the workload's own
// labels: a ReplicaSet or StatefulSet would adopt a pod its selector
// matches, and the app Service would send users to it.
const (
	LabelHelper         = "nocobot.io/helper"
	LabelHelperWorkload = "nocobot.io/workload"
	helperContainer     = "storage"
)

// Storage reaches NocoBase's storage folder while every node is stopped:
// each call runs in a short-lived helper pod that mounts the workload's
// volumes (the same claims, at the same paths, with the pod's own image,
// security context and placement), through pods/exec, and the pod is
// deleted after it. A helper left by a nocobot killed meanwhile is deleted
// by the next call; its activeDeadlineSeconds ends it in any case.
//
// It is what the backup adapter needs of "containers" (Exec, CopyFrom,
// CopyTo, RunWithVolumesOf); the container name it is given is the
// workload's, as StorageName says.
type Storage struct {
	*Client
}

// NewStorage returns the storage access of c's workload. The pods need
// the Role's pods create/get/delete and pods/exec.
func NewStorage(c *Client) *Storage { return &Storage{Client: c} }

// StorageName is the name the backup adapter knows the storage by.
func (c *Client) StorageName() string {
	switch {
	case c.opts.Deployment != "":
		return "deployment/" + c.opts.Deployment
	case c.opts.StatefulSet != "":
		return "statefulset/" + c.opts.StatefulSet
	}
	return "workload/" + labels.SelectorFromSet(c.opts.Selector).String()
}

// DescribeStorage says where the storage is read, for progress messages.
func (s *Storage) DescribeStorage(name, dir string) string {
	return dir + " of " + name + ", through a helper pod with its volumes"
}

// Exec runs cmd in a helper pod with the storage volume mounted.
func (s *Storage) Exec(ctx context.Context, name string, cmd []string, stdin io.Reader, stdout io.Writer) error {
	return s.withPod(ctx, name, "", func(ctx context.Context, pod string) error {
		return s.exec(ctx, pod, cmd, stdin, stdout)
	})
}

// RunWithVolumesOf runs cmd in a helper pod; dir must lie on one of the
// NocoBase container's volumes.
func (s *Storage) RunWithVolumesOf(ctx context.Context, name, dir string, cmd []string) error {
	return s.withPod(ctx, name, dir, func(ctx context.Context, pod string) error {
		return s.exec(ctx, pod, cmd, nil, nil)
	})
}

// CopyFrom streams dir as a tar whose entries lie under dir's own name,
// as docker cp does. The helper pod lives until the stream is closed.
// tar runs in dir itself ("-C dir ."), so the command names no path
// outside the mounted volume; the entries are renamed here.
func (s *Storage) CopyFrom(ctx context.Context, name, dir string) (io.ReadCloser, error) {
	dir = path.Clean(dir)
	raw, rawW := io.Pipe()
	pr, pw := io.Pipe()
	started := make(chan error, 1)
	done := make(chan struct{})
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		defer close(done)
		renamed := make(chan error, 1)
		go func() {
			err := underName(raw, path.Base(dir), pw)
			if err == nil {
				// tar pads its stream past the end of the archive.
				_, err = io.Copy(io.Discard, raw)
			}
			// Unblocks the exec's writes when the reading side gave up.
			raw.CloseWithError(cmp.Or(err, errors.New("the copy ended")))
			renamed <- err
		}()
		err := s.withPod(ctx, name, dir, func(ctx context.Context, pod string) error {
			started <- nil
			return s.exec(ctx, pod, []string{"tar", "-cf", "-", "-C", dir, "."}, nil, rawW)
		})
		select {
		case started <- err:
		default:
		}
		rawW.CloseWithError(err)
		if rerr := <-renamed; err == nil {
			err = rerr
		}
		pw.CloseWithError(err)
	}()
	if err := <-started; err != nil {
		cancel()
		<-done
		return nil, err
	}
	return &podStream{PipeReader: pr, stop: func() { cancel(); <-done }}, nil
}

// underName copies a tar stream of "./…" entries to w with each entry
// moved below base ("./uploads/a" becomes "storage/uploads/a").
func underName(r io.Reader, base string, w io.Writer) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tw.Close()
		}
		if err != nil {
			return fmt.Errorf("read tar from the helper pod: %w", err)
		}
		hdr.Name = rebase(hdr.Name, base)
		if hdr.Typeflag == tar.TypeLink {
			hdr.Linkname = rebase(hdr.Linkname, base)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
}

func rebase(name, base string) string {
	rel := strings.TrimPrefix(name, "./")
	if rel == "" || rel == "." || rel == "/" {
		return base + "/"
	}
	return base + "/" + rel
}

// CopyTo unpacks tarStream into dir in a helper pod, keeping owners and
// modes (the helper runs as the NocoBase container does).
func (s *Storage) CopyTo(ctx context.Context, name, dir string, tarStream io.Reader) error {
	dir = path.Clean(dir)
	return s.withPod(ctx, name, dir, func(ctx context.Context, pod string) error {
		return s.exec(ctx, pod, []string{"tar", "-xf", "-", "-C", dir}, tarStream, nil)
	})
}

// podStream is CopyFrom's reader: closing it ends the copy and removes
// the helper pod.
type podStream struct {
	*io.PipeReader
	stop func()
}

func (p *podStream) Close() error {
	err := p.PipeReader.Close()
	p.stop()
	return err
}

// CheckStorage fails if dir is not on one of the NocoBase container's
// volumes, so a backup or restore would not reach it; it creates nothing.
func (s *Storage) CheckStorage(ctx context.Context, name, dir string) error {
	if name != s.StorageName() {
		return fmt.Errorf("kubernetes: storage of %s asked of %s", name, s.StorageName())
	}
	w, err := s.workload(ctx)
	if err != nil {
		return err
	}
	if _, err := storageMount(w, path.Clean(dir)); err != nil {
		return err
	}
	return nil
}

// storageMount is the container's volume mount that dir lies on.
func storageMount(w workload, dir string) (corev1.VolumeMount, error) {
	for _, m := range w.container.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if dir == mp || strings.HasPrefix(dir, mp+"/") {
			return m, nil
		}
	}
	return corev1.VolumeMount{}, fmt.Errorf("kubernetes: the storage folder %s is not on a volume of %s %s's container %s, so no other pod can reach it (mount the storage claim there, as NocoBase's Kubernetes guide does)",
		dir, w.kind, w.name, w.container.Name)
}

// helperTimeout bounds a helper pod's whole life: its creation, the wait
// until it runs, the command and the deletion.
func (s *Storage) helperTimeout() time.Duration {
	return s.opts.StartTimeout + time.Hour
}

// withPod creates a helper pod, waits until it runs, calls fn with its
// name, and deletes it whatever happened.
func (s *Storage) withPod(ctx context.Context, name, dir string, fn func(ctx context.Context, pod string) error) error {
	if name != s.StorageName() {
		return fmt.Errorf("kubernetes: storage of %s asked of %s", name, s.StorageName())
	}
	ctx, cancel := context.WithTimeout(ctx, s.helperTimeout())
	defer cancel()
	w, err := s.workload(ctx)
	if err != nil {
		return err
	}
	if dir != "" {
		if _, err := storageMount(w, path.Clean(dir)); err != nil {
			return err
		}
	}
	s.deleteHelpers(ctx, w)
	pod, err := s.createHelper(ctx, w)
	if err != nil {
		return err
	}
	defer s.deletePod(ctx, pod)
	if err := s.waitRunning(ctx, pod); err != nil {
		return err
	}
	return fn(ctx, pod)
}

func (s *Storage) helperSelector(w workload) string {
	return labels.SelectorFromSet(labels.Set{LabelHelper: helperContainer, LabelHelperWorkload: w.name}).String()
}

// createHelper makes the helper pod: the workload's image, the volumes
// the NocoBase container mounts, and the pod's placement and security
// settings, so it runs where and as a node would.
func (s *Storage) createHelper(ctx context.Context, w workload) (string, error) {
	spec := w.podSpec
	used := map[string]bool{}
	for _, m := range w.container.VolumeMounts {
		used[m.Name] = true
	}
	var vols []corev1.Volume
	for _, v := range spec.Volumes {
		if used[v.Name] {
			vols = append(vols, v)
		}
	}
	deadline := int64(s.helperTimeout() / time.Second)
	grace := int64(1)
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: w.name + "-nocobot-storage-",
			Labels:       map[string]string{LabelHelper: helperContainer, LabelHelperWorkload: w.name},
			Annotations:  map[string]string{"nocobot.io/purpose": "reads or restores the storage folder of " + w.kind + " " + w.name + " while its nodes are stopped"},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			ActiveDeadlineSeconds:         &deadline,
			TerminationGracePeriodSeconds: &grace,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			Volumes:                       vols,
			NodeSelector:                  spec.NodeSelector,
			Affinity:                      spec.Affinity,
			Tolerations:                   spec.Tolerations,
			ImagePullSecrets:              spec.ImagePullSecrets,
			SecurityContext:               spec.SecurityContext,
			PriorityClassName:             spec.PriorityClassName,
			Containers: []corev1.Container{{
				Name:            helperContainer,
				Image:           w.container.Image,
				ImagePullPolicy: w.container.ImagePullPolicy,
				// A long sleep the commands run beside; the deadline
				// ends it if nocobot never comes back.
				Command:         []string{"sleep", fmt.Sprint(deadline)},
				VolumeMounts:    w.container.VolumeMounts,
				SecurityContext: w.container.SecurityContext,
			}},
		},
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	created, err := s.cs.CoreV1().Pods(s.opts.Namespace).Create(cctx, pod, metav1.CreateOptions{})
	if err != nil {
		return "", s.apiError("a storage helper pod", "create", err)
	}
	s.log.Debug().Str("pod", created.Name).Msg("storage helper pod created")
	return created.Name, nil
}

// waitRunning waits until the helper's container runs; a pod that cannot
// start (image, volume, scheduling) fails with the reason Kubernetes
// gives.
func (s *Storage) waitRunning(ctx context.Context, pod string) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.StartTimeout)
	defer cancel()
	why := "not scheduled yet"
	for {
		cctx, ccancel := s.call(ctx)
		p, err := s.cs.CoreV1().Pods(s.opts.Namespace).Get(cctx, pod, metav1.GetOptions{})
		ccancel()
		if err != nil && ctx.Err() == nil {
			return s.apiError("storage helper pod "+pod, "read", err)
		}
		if err == nil {
			switch p.Status.Phase {
			case corev1.PodRunning:
				for _, cs := range p.Status.ContainerStatuses {
					if cs.Name == helperContainer && cs.State.Running != nil {
						return nil
					}
				}
			case corev1.PodFailed, corev1.PodSucceeded:
				return fmt.Errorf("kubernetes: storage helper pod %s ended before it was used (%s %s)", pod, p.Status.Reason, p.Status.Message)
			}
			why = podWaitReason(p)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubernetes: storage helper pod %s did not run within %s: %s", pod, s.opts.StartTimeout, why)
		case <-time.After(s.opts.PollInterval):
		}
	}
}

// podWaitReason says why a pod is not running yet, in Kubernetes' words.
func podWaitReason(p *corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			return strings.TrimSpace(w.Reason + " " + w.Message)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return string(c.Type) + ": " + c.Message
		}
	}
	return "phase " + string(p.Status.Phase)
}

// deleteHelpers removes helper pods of this workload that an earlier
// nocobot left behind.
func (s *Storage) deleteHelpers(ctx context.Context, w workload) {
	cctx, cancel := s.call(ctx)
	list, err := s.cs.CoreV1().Pods(s.opts.Namespace).List(cctx, metav1.ListOptions{LabelSelector: s.helperSelector(w)})
	cancel()
	if err != nil {
		return
	}
	for _, p := range list.Items {
		s.log.Info().Str("pod", p.Name).Msg("deleting a storage helper pod left behind")
		s.deletePod(ctx, p.Name)
	}
}

// deletePod deletes a helper pod at once, also when ctx has ended.
func (s *Storage) deletePod(ctx context.Context, pod string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.opts.CallTimeout)
	defer cancel()
	zero := int64(0)
	err := s.cs.CoreV1().Pods(s.opts.Namespace).Delete(dctx, pod, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if err != nil && !apierrors.IsNotFound(err) {
		s.log.Warn().Err(err).Str("pod", pod).Msg("storage helper pod left behind (it ends at its deadline; the next backup or restore deletes it)")
	}
}

// exec runs cmd in the helper's container through pods/exec, over
// WebSocket or, where a proxy refuses it, SPDY, as kubectl does. A
// non-zero exit fails with the command's last error output.
func (s *Storage) exec(ctx context.Context, pod string, cmd []string, stdin io.Reader, stdout io.Writer) error {
	if s.cfg == nil {
		return errors.New("kubernetes: no API connection for pods/exec")
	}
	req := s.cs.CoreV1().RESTClient().Post().Namespace(s.opts.Namespace).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: helperContainer, Command: cmd, Stdin: stdin != nil, Stdout: stdout != nil, Stderr: true}, scheme.ParameterCodec)
	// The stream lasts as long as the copy: the per-call timeout of the
	// API client must not cut it (ctx bounds it instead).
	cfg := *s.cfg
	cfg.Timeout = 0
	ws, err := remotecommand.NewWebSocketExecutor(&cfg, "GET", req.URL().String())
	if err != nil {
		return fmt.Errorf("kubernetes: exec in %s: %w", pod, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(&cfg, "POST", req.URL())
	if err != nil {
		return fmt.Errorf("kubernetes: exec in %s: %w", pod, err)
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return fmt.Errorf("kubernetes: exec in %s: %w", pod, err)
	}
	stderr := &lastBytes{max: 2 << 10}
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if err == nil {
		return nil
	}
	var code exec.ExitError
	msg := strings.TrimSpace(stderr.String())
	if msg != "" {
		msg = ": " + msg
	}
	if errors.As(err, &code) {
		return fmt.Errorf("kubernetes: %s in storage helper pod %s: exit code %d%s", cmd[0], pod, code.ExitStatus(), msg)
	}
	if apierrors.IsForbidden(err) {
		return s.apiError("pod "+pod, "exec in", err)
	}
	return fmt.Errorf("kubernetes: %s in storage helper pod %s: %w%s", cmd[0], pod, err, msg)
}

// lastBytes keeps the end of a stream, for error messages.
type lastBytes struct {
	max int
	b   bytes.Buffer
}

func (l *lastBytes) Write(p []byte) (int, error) {
	l.b.Write(p)
	if over := l.b.Len() - l.max; over > 0 {
		l.b.Next(over)
	}
	return len(p), nil
}

func (l *lastBytes) String() string { return l.b.String() }
