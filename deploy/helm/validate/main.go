// Command validate checks rendered Helm output offline against the real Kubernetes API types.
//
// Every YAML document is decoded with client-go's scheme in strict mode, so an unknown field, a
// duplicated field or a value of the wrong type is an error, as is a kind the scheme does not
// know. Custom resources it cannot decode (ServiceMonitor, ScaledObject) are named as not
// schema-checked. Then it checks what the API server would accept but would still be broken:
// names and labels, selectors that match nothing, Service and probe ports that no container
// declares, Secret keys that a rendered Secret lacks, a Deployment whose replicas an autoscaler
// also sets, and the hardening every pod must have (non-root, RuntimeDefault seccomp, no
// privilege escalation, ALL capabilities dropped, read-only root filesystem unless the pod
// template says why not in the annotation checks.loupe.io/writable-root) and no service-link
// environment variables.
//
// Usage: validate FILE... (each FILE is the output of one `helm template`); exits 1 on any error.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// knownCRDs are custom resources the chart may render; their schemas are not in client-go.
var knownCRDs = map[schema.GroupVersionKind]bool{
	{Group: "monitoring.coreos.com", Version: "v1", Kind: "ServiceMonitor"}: true,
	{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}:           true,
	{Group: "keda.sh", Version: "v1alpha1", Kind: "TriggerAuthentication"}:  true,
}

const writableRootAnnotation = "checks.loupe.io/writable-root"

var sourceRe = regexp.MustCompile(`(?m)^# Source: (\S+)`)

type object struct {
	source string // the template that rendered it
	kind   string
	name   string
	typed  runtime.Object
	crd    *unstructured.Unstructured
}

func (o *object) String() string { return fmt.Sprintf("%s/%s (%s)", o.kind, o.name, o.source) }

// workload is a pod template and what selects it.
type workload struct {
	obj      *object
	selector labels.Selector // nil for a bare Pod
	template corev1.PodTemplateSpec
	replicas bool     // spec.replicas set explicitly
	claims   []string // StatefulSet volumeClaimTemplates, usable as volumes
}

type report struct {
	errs []string
}

func (r *report) errorf(o *object, format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf("%s: %s", o, fmt.Sprintf(format, args...)))
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: validate FILE...")
		os.Exit(2)
	}
	codecs := serializer.NewCodecFactory(scheme.Scheme, serializer.EnableStrict)
	failed := false
	for _, path := range os.Args[1:] {
		objs, r, crds := decodeFile(codecs, path)
		if len(r.errs) == 0 {
			checkObjects(objs, r)
		}
		name := filepath.Base(path)
		if len(r.errs) > 0 {
			failed = true
			fmt.Printf("FAIL %s: %d error(s)\n", name, len(r.errs))
			for _, e := range r.errs {
				fmt.Printf("  - %s\n", e)
			}
			continue
		}
		msg := fmt.Sprintf("ok   %s: %d objects decoded strictly with k8s.io/api", name, len(objs)-countCRDs(crds))
		if len(crds) > 0 {
			msg += fmt.Sprintf("; CRDs not schema-checked (references checked): %s", summarise(crds))
		}
		fmt.Println(msg)
	}
	if failed {
		os.Exit(1)
	}
}

func countCRDs(crds map[string]int) int {
	n := 0
	for _, c := range crds {
		n += c
	}
	return n
}

func summarise(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, counts[k])
	}
	return strings.Join(parts, ", ")
}

// decodeFile splits a multi-document YAML file and decodes each document strictly.
func decodeFile(codecs serializer.CodecFactory, path string) ([]*object, *report, map[string]int) {
	r := &report{}
	crds := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		r.errs = append(r.errs, err.Error())
		return nil, r, crds
	}
	defer f.Close()
	reader := k8syaml.NewYAMLReader(bufio.NewReader(f))
	deserializer := codecs.UniversalDeserializer()
	var objs []*object
	seen := map[string]bool{}
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			r.errs = append(r.errs, fmt.Sprintf("document %d: %v", i, err))
			break
		}
		source := fmt.Sprintf("document %d", i)
		if m := sourceRe.FindSubmatch(doc); m != nil {
			source = string(m[1])
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			r.errs = append(r.errs, fmt.Sprintf("%s: not YAML: %v", source, err))
			continue
		}
		if len(probe) == 0 {
			continue // an empty document (a template that rendered nothing)
		}
		var tm metav1.TypeMeta
		_ = yaml.Unmarshal(doc, &tm)
		o := &object{source: source, kind: tm.Kind}
		if tm.APIVersion == "" || tm.Kind == "" {
			r.errs = append(r.errs, fmt.Sprintf("%s: apiVersion and kind are required", source))
			continue
		}
		gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
		if knownCRDs[gvk] {
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil {
				r.errs = append(r.errs, fmt.Sprintf("%s: %v", source, err))
				continue
			}
			o.crd, o.name = u, u.GetName()
			crds[tm.Kind]++
		} else {
			obj, _, err := deserializer.Decode(doc, nil, nil)
			if err != nil {
				if runtime.IsNotRegisteredError(err) {
					err = fmt.Errorf("%s is neither a Kubernetes API type nor a known CRD", gvk)
				}
				r.errs = append(r.errs, fmt.Sprintf("%s %s: %v", source, tm.Kind, err))
				continue
			}
			meta, ok := obj.(metav1.Object)
			if !ok {
				r.errs = append(r.errs, fmt.Sprintf("%s: %s has no metadata", source, tm.Kind))
				continue
			}
			o.typed, o.name = obj, meta.GetName()
		}
		key := tm.Kind + "/" + o.name
		if seen[key] {
			r.errorf(o, "rendered twice")
		}
		seen[key] = true
		objs = append(objs, o)
	}
	return objs, r, crds
}

func metaOf(o *object) metav1.Object {
	if o.crd != nil {
		return o.crd
	}
	return o.typed.(metav1.Object)
}

// checkObjects runs the per-object and cross-object checks.
func checkObjects(objs []*object, r *report) {
	var workloads []workload
	secrets := map[string]*corev1.Secret{}
	configMaps := map[string]*corev1.ConfigMap{}
	services := map[string]*corev1.Service{}
	deployments := map[string]*workload{}
	for _, o := range objs {
		checkMeta(o, r)
		switch t := o.typed.(type) {
		case *appsv1.Deployment:
			workloads = append(workloads, workload{obj: o, selector: selectorOf(o, t.Spec.Selector, r), template: t.Spec.Template, replicas: t.Spec.Replicas != nil})
		case *appsv1.StatefulSet:
			w := workload{obj: o, selector: selectorOf(o, t.Spec.Selector, r), template: t.Spec.Template}
			for _, c := range t.Spec.VolumeClaimTemplates {
				w.claims = append(w.claims, c.Name)
			}
			workloads = append(workloads, w)
		case *appsv1.DaemonSet:
			workloads = append(workloads, workload{obj: o, selector: selectorOf(o, t.Spec.Selector, r), template: t.Spec.Template})
		case *batchv1.Job:
			workloads = append(workloads, workload{obj: o, template: t.Spec.Template})
		case *batchv1.CronJob:
			workloads = append(workloads, workload{obj: o, template: t.Spec.JobTemplate.Spec.Template})
		case *corev1.Pod:
			workloads = append(workloads, workload{obj: o, template: corev1.PodTemplateSpec{ObjectMeta: t.ObjectMeta, Spec: t.Spec}})
		case *corev1.Secret:
			secrets[o.name] = t
		case *corev1.ConfigMap:
			configMaps[o.name] = t
		case *corev1.Service:
			services[o.name] = t
		}
	}
	for i := range workloads {
		if _, ok := workloads[i].obj.typed.(*appsv1.Deployment); ok {
			deployments[workloads[i].obj.name] = &workloads[i]
		}
	}
	for i := range workloads {
		checkWorkload(&workloads[i], secrets, configMaps, r)
	}
	matching := func(sel labels.Selector) []*workload {
		var out []*workload
		for i := range workloads {
			if sel != nil && !sel.Empty() && sel.Matches(labels.Set(workloads[i].template.Labels)) {
				out = append(out, &workloads[i])
			}
		}
		return out
	}
	triggerAuths := map[string]bool{}
	for _, o := range objs {
		if o.crd != nil && o.kind == "TriggerAuthentication" {
			triggerAuths[o.name] = true
		}
	}
	for _, o := range objs {
		switch t := o.typed.(type) {
		case *corev1.Service:
			checkService(o, t, matching, r)
		case *networkingv1.NetworkPolicy:
			checkNetworkPolicy(o, t, matching, r)
		case *policyv1.PodDisruptionBudget:
			if sel := selectorOf(o, t.Spec.Selector, r); len(matching(sel)) == 0 {
				r.errorf(o, "selector %s matches no pod template", sel)
			}
		case *autoscalingv2.HorizontalPodAutoscaler:
			checkScaleTarget(o, t.Spec.ScaleTargetRef.Kind, t.Spec.ScaleTargetRef.Name, deployments, r)
			if t.Spec.MinReplicas != nil && *t.Spec.MinReplicas > t.Spec.MaxReplicas {
				r.errorf(o, "minReplicas %d > maxReplicas %d", *t.Spec.MinReplicas, t.Spec.MaxReplicas)
			}
		case *appsv1.StatefulSet:
			if svc, ok := services[t.Spec.ServiceName]; !ok {
				r.errorf(o, "serviceName %q is not a rendered Service", t.Spec.ServiceName)
			} else if svc.Spec.ClusterIP != corev1.ClusterIPNone {
				r.errorf(o, "serviceName %q is not a headless Service", t.Spec.ServiceName)
			}
		case *networkingv1.Ingress:
			checkIngress(o, t, services, r)
		}
		if o.crd != nil {
			checkCRD(o, deployments, services, secrets, triggerAuths, r)
		}
	}
}

func checkMeta(o *object, r *report) {
	m := metaOf(o)
	nameErrs := validation.IsDNS1123Subdomain(o.name)
	if o.kind == "Service" {
		nameErrs = validation.IsDNS1035Label(o.name)
	}
	for _, e := range nameErrs {
		r.errorf(o, "invalid name: %s", e)
	}
	for k, v := range m.GetLabels() {
		for _, e := range validation.IsQualifiedName(k) {
			r.errorf(o, "label key %q: %s", k, e)
		}
		for _, e := range validation.IsValidLabelValue(v) {
			r.errorf(o, "label %s=%q: %s", k, v, e)
		}
	}
	for k := range m.GetAnnotations() {
		for _, e := range validation.IsQualifiedName(k) {
			r.errorf(o, "annotation key %q: %s", k, e)
		}
	}
}

func selectorOf(o *object, ls *metav1.LabelSelector, r *report) labels.Selector {
	if ls == nil {
		r.errorf(o, "no selector")
		return nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		r.errorf(o, "selector: %v", err)
		return nil
	}
	return sel
}

func checkWorkload(w *workload, secrets map[string]*corev1.Secret, configMaps map[string]*corev1.ConfigMap, r *report) {
	o, spec := w.obj, w.template.Spec
	if w.selector != nil && !w.selector.Matches(labels.Set(w.template.Labels)) {
		r.errorf(o, "selector %s does not match the pod template's labels %v", w.selector, w.template.Labels)
	}
	for k, v := range w.template.Labels {
		for _, e := range validation.IsValidLabelValue(v) {
			r.errorf(o, "pod label %s=%q: %s", k, v, e)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		if _, dup := volumes[v.Name]; dup {
			r.errorf(o, "volume %q declared twice", v.Name)
		}
		volumes[v.Name] = v
		if v.Secret != nil {
			checkSecretRef(o, secrets, v.Secret.SecretName, "", r)
		}
		if v.ConfigMap != nil {
			if _, ok := configMaps[v.ConfigMap.Name]; !ok {
				r.errorf(o, "volume %q: ConfigMap %q is not rendered", v.Name, v.ConfigMap.Name)
			}
		}
	}
	for _, c := range w.claims {
		if _, dup := volumes[c]; dup {
			r.errorf(o, "volume %q is also a volumeClaimTemplate", c)
		}
		volumes[c] = corev1.Volume{Name: c}
	}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	// Service links inject <SERVICE>_PORT=tcp://... variables that can collide with configuration
	// read from the environment (LOUPE_*, and KAFKA_* in the apache/kafka image).
	if spec.EnableServiceLinks == nil || *spec.EnableServiceLinks {
		r.errorf(o, "enableServiceLinks is not false")
	}
	writableRoot := w.template.Annotations[writableRootAnnotation] != ""
	all := append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...)
	for _, c := range all {
		cref := fmt.Sprintf("container %q", c.Name)
		for _, e := range validation.IsDNS1123Label(c.Name) {
			r.errorf(o, "%s: invalid name: %s", cref, e)
		}
		if c.Image == "" {
			r.errorf(o, "%s: no image", cref)
		}
		ports := map[string]int32{}
		numbers := map[int32]bool{}
		for _, p := range c.Ports {
			numbers[p.ContainerPort] = true
			if p.Name == "" {
				continue
			}
			for _, e := range validation.IsValidPortName(p.Name) {
				r.errorf(o, "%s: port name %q: %s", cref, p.Name, e)
			}
			if _, dup := ports[p.Name]; dup {
				r.errorf(o, "%s: port name %q used twice", cref, p.Name)
			}
			ports[p.Name] = p.ContainerPort
		}
		env := map[string]bool{}
		for _, e := range c.Env {
			for _, msg := range validation.IsEnvVarName(e.Name) {
				r.errorf(o, "%s: env %q: %s", cref, e.Name, msg)
			}
			if env[e.Name] {
				r.errorf(o, "%s: env %q set twice", cref, e.Name)
			}
			env[e.Name] = true
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				checkSecretRef(o, secrets, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key, r)
			}
		}
		mounts := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if _, ok := volumes[m.Name]; !ok {
				r.errorf(o, "%s: volumeMount %q has no volume", cref, m.Name)
			}
			if mounts[m.MountPath] {
				r.errorf(o, "%s: two mounts at %s", cref, m.MountPath)
			}
			mounts[m.MountPath] = true
		}
		for kind, p := range map[string]*corev1.Probe{"startupProbe": c.StartupProbe, "readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
			if p == nil {
				continue
			}
			var port *intstr.IntOrString
			switch {
			case p.HTTPGet != nil:
				port = &p.HTTPGet.Port
			case p.TCPSocket != nil:
				port = &p.TCPSocket.Port
			case p.GRPC != nil:
				if !numbers[p.GRPC.Port] {
					r.errorf(o, "%s: %s gRPC port %d is not a container port", cref, kind, p.GRPC.Port)
				}
			case p.Exec == nil:
				r.errorf(o, "%s: %s has no handler", cref, kind)
			}
			if port != nil {
				if port.Type == intstr.String {
					if _, ok := ports[port.StrVal]; !ok {
						r.errorf(o, "%s: %s port %q is not a named container port", cref, kind, port.StrVal)
					}
				} else if !numbers[port.IntVal] {
					r.errorf(o, "%s: %s port %d is not a container port", cref, kind, port.IntVal)
				}
			}
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[name]; !ok {
				r.errorf(o, "%s: no %s request", cref, name)
			}
		}
		for name, req := range c.Resources.Requests {
			if lim, ok := c.Resources.Limits[name]; ok && req.Cmp(lim) > 0 {
				r.errorf(o, "%s: %s request %s exceeds its limit %s", cref, name, req.String(), lim.String())
			}
		}
		checkHardening(o, cref, psc, c.SecurityContext, writableRoot, r)
	}
}

func checkHardening(o *object, cref string, psc *corev1.PodSecurityContext, sc *corev1.SecurityContext, writableRoot bool, r *report) {
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
	if !nonRoot {
		r.errorf(o, "%s: runAsNonRoot is not true", cref)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		r.errorf(o, "%s: seccompProfile is not RuntimeDefault", cref)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		r.errorf(o, "%s: allowPrivilegeEscalation is not false", cref)
	}
	dropsAll := false
	if sc.Capabilities != nil {
		for _, c := range sc.Capabilities.Drop {
			dropsAll = dropsAll || c == "ALL"
		}
		if len(sc.Capabilities.Add) > 0 {
			r.errorf(o, "%s: adds capabilities %v", cref, sc.Capabilities.Add)
		}
	}
	if !dropsAll {
		r.errorf(o, "%s: capabilities do not drop ALL", cref)
	}
	readOnly := sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem
	if !readOnly && !writableRoot {
		r.errorf(o, "%s: readOnlyRootFilesystem is not true (annotate the pod template with %s: <why> if it cannot be)", cref, writableRootAnnotation)
	}
}

func checkSecretRef(o *object, secrets map[string]*corev1.Secret, name, key string, r *report) {
	s, ok := secrets[name]
	if !ok {
		return // made outside the chart (existingSecret): cannot be checked here
	}
	if key == "" {
		return
	}
	if _, ok := s.Data[key]; ok {
		return
	}
	if _, ok := s.StringData[key]; ok {
		return
	}
	r.errorf(o, "Secret %q has no key %q", name, key)
}

func checkService(o *object, svc *corev1.Service, matching func(labels.Selector) []*workload, r *report) {
	if len(svc.Spec.Selector) == 0 {
		r.errorf(o, "no selector")
		return
	}
	pods := matching(labels.SelectorFromSet(svc.Spec.Selector))
	if len(pods) == 0 {
		r.errorf(o, "selector %v matches no pod template", svc.Spec.Selector)
		return
	}
	for _, p := range svc.Spec.Ports {
		for _, w := range pods {
			if !podHasPort(w.template.Spec, p.TargetPort) {
				r.errorf(o, "port %q: target %s is not a port of %s", p.Name, p.TargetPort.String(), w.obj)
			}
		}
	}
}

func podHasPort(spec corev1.PodSpec, port intstr.IntOrString) bool {
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			if (port.Type == intstr.String && cp.Name == port.StrVal) || (port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
				return true
			}
		}
	}
	return false
}

func checkNetworkPolicy(o *object, np *networkingv1.NetworkPolicy, matching func(labels.Selector) []*workload, r *report) {
	sel := selectorOf(o, &np.Spec.PodSelector, r)
	targets := matching(sel)
	if len(targets) == 0 {
		r.errorf(o, "podSelector %s matches no pod template", sel)
		return
	}
	for i, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			if p.Port == nil {
				continue
			}
			for _, w := range targets {
				if !podHasPort(w.template.Spec, *p.Port) {
					r.errorf(o, "ingress rule %d: port %s is not a port of %s", i, p.Port.String(), w.obj)
				}
			}
		}
		for _, peer := range rule.From {
			// A peer with a namespaceSelector may select pods outside this release.
			if peer.PodSelector == nil || peer.NamespaceSelector != nil {
				continue
			}
			psel := selectorOf(o, peer.PodSelector, r)
			if len(matching(psel)) == 0 {
				r.errorf(o, "ingress rule %d: peer %s matches no pod template", i, psel)
			}
		}
	}
}

func checkScaleTarget(o *object, kind, name string, deployments map[string]*workload, r *report) {
	if kind != "" && kind != "Deployment" {
		r.errorf(o, "scale target kind %q is not checked", kind)
		return
	}
	d, ok := deployments[name]
	if !ok {
		r.errorf(o, "scale target Deployment %q is not rendered", name)
		return
	}
	if d.replicas {
		r.errorf(o, "Deployment %q sets spec.replicas although %s scales it (every upgrade would reset it)", name, o.kind)
	}
}

func checkIngress(o *object, ing *networkingv1.Ingress, services map[string]*corev1.Service, r *report) {
	for _, rule := range ing.Spec.Rules {
		if rule.HTTP == nil {
			continue
		}
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if b == nil {
				continue
			}
			svc, ok := services[b.Name]
			if !ok {
				r.errorf(o, "backend Service %q is not rendered", b.Name)
				continue
			}
			found := false
			for _, sp := range svc.Spec.Ports {
				found = found || (b.Port.Name != "" && sp.Name == b.Port.Name) || (b.Port.Number != 0 && sp.Port == b.Port.Number)
			}
			if !found {
				r.errorf(o, "backend Service %q has no port %v", b.Name, b.Port)
			}
		}
	}
}

// checkCRD checks the references of the custom resources it cannot schema-check.
func checkCRD(o *object, deployments map[string]*workload, services map[string]*corev1.Service,
	secrets map[string]*corev1.Secret, triggerAuths map[string]bool, r *report) {
	u := o.crd
	switch o.kind {
	case "ScaledObject":
		name, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "name")
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "scaleTargetRef", "kind")
		checkScaleTarget(o, kind, name, deployments, r)
		triggers, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
		if len(triggers) == 0 {
			r.errorf(o, "no triggers")
		}
		for _, t := range triggers {
			tm, _ := t.(map[string]any)
			ref, _, _ := unstructured.NestedString(tm, "authenticationRef", "name")
			if ref != "" && !triggerAuths[ref] {
				r.errorf(o, "authenticationRef %q is not a rendered TriggerAuthentication", ref)
			}
		}
	case "TriggerAuthentication":
		refs, _, _ := unstructured.NestedSlice(u.Object, "spec", "secretTargetRef")
		for _, ref := range refs {
			m, _ := ref.(map[string]any)
			name, _ := m["name"].(string)
			key, _ := m["key"].(string)
			checkSecretRef(o, secrets, name, key, r)
		}
	case "ServiceMonitor":
		ml, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
		sel := labels.SelectorFromSet(ml)
		endpoints, _, _ := unstructured.NestedSlice(u.Object, "spec", "endpoints")
		var selected []*corev1.Service
		for _, svc := range services {
			if len(ml) > 0 && sel.Matches(labels.Set(svc.Labels)) {
				selected = append(selected, svc)
			}
		}
		if len(selected) == 0 {
			r.errorf(o, "selector %v matches no rendered Service", ml)
		}
		for _, e := range endpoints {
			port, _ := e.(map[string]any)["port"].(string)
			found := false
			for _, svc := range selected {
				for _, p := range svc.Spec.Ports {
					found = found || p.Name == port
				}
			}
			if !found {
				r.errorf(o, "endpoint port %q is on none of the selected Services", port)
			}
		}
	}
}
