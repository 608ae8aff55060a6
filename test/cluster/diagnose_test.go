//go:build cluster

package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// diagnoseOnFailure prints, when t has failed, what explains a red run: every pod of
// the operator's, the workloads' and the test's namespaces with its phase, conditions
// and containers' states; their recent events; the operator's logs (and the previous
// container's, after a restart); the probes' reports.
func diagnoseOnFailure(t *testing.T) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var b strings.Builder
		w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
		w("==== diagnostics (%s) ====", t.Name())
		for _, ns := range []string{operatorNS, testNS, "shop", "kube-system"} {
			pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				w("pods of %s: %v", ns, err)
				continue
			}
			w("-- pods of %s", ns)
			for _, p := range pods.Items {
				w("%s", podState(&p))
			}
			events, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err == nil {
				items := events.Items
				sort.Slice(items, func(i, j int) bool { return eventTime(&items[i]).Before(eventTime(&items[j])) })
				if len(items) > 30 {
					items = items[len(items)-30:]
				}
				w("-- last events of %s", ns)
				for _, e := range items {
					w("  %s %s %s/%s %s: %s", eventTime(&e).Format(time.TimeOnly), e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, strings.TrimSpace(e.Message))
				}
			}
		}
		pods, _ := kube.CoreV1().Pods(operatorNS).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=oauth-client-operator"})
		if pods != nil {
			for _, p := range pods.Items {
				w("-- logs of %s/%s (last 60 lines)", operatorNS, p.Name)
				w("%s", podLogs(ctx, operatorNS, p.Name, "manager", false, 60))
				for _, cs := range p.Status.ContainerStatuses {
					if cs.RestartCount > 0 {
						w("-- logs of the previous container of %s", p.Name)
						w("%s", podLogs(ctx, operatorNS, p.Name, "manager", true, 60))
					}
				}
			}
		}
		probes, _ := kube.CoreV1().Pods(testNS).List(ctx, metav1.ListOptions{LabelSelector: "app=probe"})
		if probes != nil {
			for _, p := range probes.Items {
				st, err := readStats(ctx, p.Name)
				w("-- probe %s: %+v %v", p.Name, st, err)
			}
		}
		t.Log(b.String())
	})
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	default:
		return e.CreationTimestamp.Time
	}
}

// podState is one line per pod and container: phase, readiness, restarts, waiting or
// terminated reasons.
func podState(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  %s phase=%s ip=%s", p.Name, p.Status.Phase, p.Status.PodIP)
	if p.DeletionTimestamp != nil {
		b.WriteString(" terminating")
	}
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			fmt.Fprintf(&b, " %s=%s(%s %s)", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, cs := range p.Status.ContainerStatuses {
		fmt.Fprintf(&b, "\n    container %s ready=%t restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
		if w := cs.State.Waiting; w != nil {
			fmt.Fprintf(&b, " waiting=%s: %s", w.Reason, w.Message)
		}
		if term := cs.State.Terminated; term != nil {
			fmt.Fprintf(&b, " terminated=%s exit=%d: %s", term.Reason, term.ExitCode, term.Message)
		}
		if term := cs.LastTerminationState.Terminated; term != nil {
			fmt.Fprintf(&b, " last=%s exit=%d", term.Reason, term.ExitCode)
		}
	}
	return b.String()
}

// podLogs is the last lines of a container's log, without the audit records of
// issued tokens (one per probe round: they would hide the rest).
func podLogs(ctx context.Context, ns, pod, container string, previous bool, lines int) string {
	b, err := kube.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container, Previous: previous, TailLines: ptr.To[int64](20000)}).DoRaw(ctx)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	var kept []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if !strings.Contains(l, `"msg":"token issued"`) {
			kept = append(kept, l)
		}
	}
	if len(kept) > lines {
		kept = kept[len(kept)-lines:]
	}
	return "  | " + strings.Join(kept, "\n  | ")
}
