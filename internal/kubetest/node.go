package kubetest

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// NodeName is the one node the stand-in kubelet registers; every pod is
// bound to it.
const NodeName = "kubetest-node"

// heartbeatEvery is how often the node's lease and Ready condition are
// renewed, as a kubelet does (the node lifecycle controller marks a node
// silent for 50 s NotReady, and evicts its pods 5 minutes later).
const heartbeatEvery = 10 * time.Second

// registerNode creates the node, Ready, its kubelet endpoint on port:
// the API server sends pods/exec there (at the node's InternalIP).
func (k *Kubelet) registerNode(ctx context.Context, port int) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: NodeName, Labels: map[string]string{
		"kubernetes.io/hostname": NodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": runtime.GOARCH}}}
	_, err := k.cp.Admin.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node: %w", err)
	}
	k.kubeletPort = port
	return k.heartbeat(ctx)
}

// heartbeat renews the node's lease and writes its status.
func (k *Kubelet) heartbeat(ctx context.Context) error {
	now := metav1.NowMicro()
	leases := k.cp.Admin.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	holder, dur := NodeName, int32(40)
	lease, err := leases.Get(ctx, NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		lease = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: NodeName, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &dur, RenewTime: &now}}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
	case err == nil:
		lease.Spec.HolderIdentity, lease.Spec.LeaseDurationSeconds, lease.Spec.RenewTime = &holder, &dur, &now
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	}
	if err != nil {
		return fmt.Errorf("node lease: %w", err)
	}
	t := metav1.Now()
	capacity := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("1000")}
	cond := func(typ corev1.NodeConditionType, s corev1.ConditionStatus, reason string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: typ, Status: s, Reason: reason, LastHeartbeatTime: t, LastTransitionTime: k.nodeSince}
	}
	st := corev1.NodeStatus{
		Capacity: capacity, Allocatable: capacity,
		Addresses:       []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: int32(k.kubeletPort)}},
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID"),
		},
		NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.34.2", OperatingSystem: "linux", Architecture: runtime.GOARCH},
	}
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return err
	}
	if _, err := k.cp.Admin.CoreV1().Nodes().Patch(ctx, NodeName, types.MergePatchType, body, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("node status: %w", err)
	}
	return nil
}

// heartbeats keeps the node alive until the kubelet stops.
func (k *Kubelet) heartbeats() {
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		select {
		case <-k.stopc:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), heartbeatEvery)
		_ = k.heartbeat(ctx) // the next beat tries again; the grace period covers several
		cancel()
	}
}

// bind places a new pod on the node, as the scheduler does.
func (k *Kubelet) bind(ctx context.Context, p *corev1.Pod) error {
	return k.cp.Admin.CoreV1().Pods(p.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: NodeName},
	}, metav1.CreateOptions{})
}
