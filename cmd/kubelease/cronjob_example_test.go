package main

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubelease/lease"
)

// These tests keep examples/cronjob honest: the CronJob's command line is
// one the real "kubelease run" accepts, its Role grants what that command
// needs (and no more), and its Dockerfile builds this module.

// cronjobExample is the directory of the example, from this module's.
var cronjobExample = filepath.Join("..", "..", "examples", "cronjob")

// The parts of the example's objects the tests read.
type (
	objectMeta struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	}
	exampleEnvVar struct {
		Name      string `json:"name"`
		Value     string `json:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `json:"fieldPath"`
			} `json:"fieldRef"`
		} `json:"valueFrom"`
	}
	exampleContainer struct {
		Name    string          `json:"name"`
		Command []string        `json:"command"`
		Args    []string        `json:"args"`
		Env     []exampleEnvVar `json:"env"`
	}
	examplePodFailureRule struct {
		Action      string `json:"action"`
		OnExitCodes *struct {
			ContainerName string `json:"containerName"`
			Operator      string `json:"operator"`
			Values        []int  `json:"values"`
		} `json:"onExitCodes"`
	}
	examplePodSpec struct {
		ServiceAccountName            string             `json:"serviceAccountName"`
		RestartPolicy                 string             `json:"restartPolicy"`
		TerminationGracePeriodSeconds *int64             `json:"terminationGracePeriodSeconds"`
		Containers                    []exampleContainer `json:"containers"`
	}
	exampleCronJob struct {
		APIVersion string     `json:"apiVersion"`
		Kind       string     `json:"kind"`
		Metadata   objectMeta `json:"metadata"`
		Spec       struct {
			ConcurrencyPolicy string `json:"concurrencyPolicy"`
			JobTemplate       struct {
				Spec struct {
					ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds"`
					PodFailurePolicy      *struct {
						Rules []examplePodFailureRule `json:"rules"`
					} `json:"podFailurePolicy"`
					Template struct {
						Spec examplePodSpec `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		} `json:"spec"`
	}
	examplePolicyRule struct {
		APIGroups     []string `json:"apiGroups"`
		Resources     []string `json:"resources"`
		ResourceNames []string `json:"resourceNames"`
		Verbs         []string `json:"verbs"`
	}
	exampleRBACObject struct {
		Kind     string              `json:"kind"`
		Metadata objectMeta          `json:"metadata"`
		Rules    []examplePolicyRule `json:"rules"`
		RoleRef  struct {
			APIGroup string `json:"apiGroup"`
			Kind     string `json:"kind"`
			Name     string `json:"name"`
		} `json:"roleRef"`
		Subjects []struct {
			Kind      string `json:"kind"`
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"subjects"`
	}
)

// exampleRun is the example's "kubelease run" command line as the real
// command parsed it.
type exampleRun struct {
	cronJob   exampleCronJob
	pod       examplePodSpec
	container exampleContainer
	argv      []string          // command + args, as in the manifest
	env       map[string]string // env var name -> downward API fieldPath ("" if none)
	name      string            // the Lease NAME
	cmdArgv   []string          // CMD [ARGS...] after "--"
	id        string
	namespace string
	ttl       time.Duration
	timeout   time.Duration
	killAfter time.Duration
	slots     int
	conflict  int
	signal    string
}

// loadCronJobExample reads cronjob.yaml and parses its container's command
// line with the real command tree, without running it.
func loadCronJobExample(t *testing.T) exampleRun {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cronjobExample, "cronjob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r exampleRun
	if err := yaml.Unmarshal(data, &r.cronJob); err != nil {
		t.Fatalf("cronjob.yaml: %v", err)
	}
	if r.cronJob.APIVersion != "batch/v1" || r.cronJob.Kind != "CronJob" {
		t.Fatalf("cronjob.yaml is a %s %s, want a batch/v1 CronJob", r.cronJob.APIVersion, r.cronJob.Kind)
	}
	r.pod = r.cronJob.Spec.JobTemplate.Spec.Template.Spec
	if len(r.pod.Containers) != 1 {
		t.Fatalf("cronjob.yaml: %d containers, want 1", len(r.pod.Containers))
	}
	r.container = r.pod.Containers[0]
	r.argv = append(slices.Clone(r.container.Command), r.container.Args...)
	r.env = map[string]string{}
	for _, e := range r.container.Env {
		fp := ""
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			fp = e.ValueFrom.FieldRef.FieldPath
		}
		r.env[e.Name] = fp
	}
	if len(r.argv) < 2 || path.Base(r.argv[0]) != "kubelease" || r.argv[1] != "run" {
		t.Fatalf("cronjob.yaml: the container runs %q, want \"kubelease run ...\"", r.argv)
	}

	root := newRootCommand(strings.NewReader(""), io.Discard, io.Discard)
	cmd, rest, err := root.Find(r.argv[1:])
	if err != nil {
		t.Fatalf("cronjob.yaml: finding the command of %q: %v", r.argv[1:], err)
	}
	if cmd.Name() != "run" {
		t.Fatalf("cronjob.yaml: %q is the command %q, want run", r.argv[1:], cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		t.Fatalf("cronjob.yaml: kubelease run rejects the flags of %q: %v", rest, err)
	}
	args := cmd.Flags().Args()
	if err := cmd.ValidateArgs(args); err != nil {
		t.Fatalf("cronjob.yaml: kubelease run rejects the arguments %q: %v", args, err)
	}
	r.name, r.cmdArgv = args[0], args[1:]

	f := cmd.Flags()
	get := func(v any, err error) any {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	r.id = get(f.GetString("id")).(string)
	r.namespace = get(f.GetString("namespace")).(string)
	r.ttl = get(f.GetDuration("ttl")).(time.Duration)
	r.timeout = get(f.GetDuration("timeout")).(time.Duration)
	r.killAfter = get(f.GetDuration("kill-after")).(time.Duration)
	r.slots = get(f.GetInt("slots")).(int)
	r.conflict = get(f.GetInt("conflict-exit-code")).(int)
	r.signal = get(f.GetString("signal")).(string)
	return r
}

// envRef matches a Kubernetes $(VAR) reference not escaped as $$(VAR).
var envRef = regexp.MustCompile(`(^|[^$])\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func TestCronJobExampleCommandLine(t *testing.T) {
	r := loadCronJobExample(t)

	// What "kubelease run" itself checks before it starts (run.go).
	if _, err := parseSignal(r.signal); err != nil {
		t.Errorf("--signal %q: %v", r.signal, err)
	}
	if r.slots < 1 || r.slots > lease.MaxSlots {
		t.Errorf("--slots %d: must be from 1 to %d", r.slots, lease.MaxSlots)
	}
	if r.conflict < 0 || r.conflict > 255 {
		t.Errorf("--conflict-exit-code %d: must be from 0 to 255", r.conflict)
	}
	if r.ttl <= 0 || r.timeout <= 0 || r.killAfter <= 0 {
		t.Errorf("--ttl %s, --timeout %s, --kill-after %s: the example sets each, above 0", r.ttl, r.timeout, r.killAfter)
	}
	if r.name != "nightly-report" {
		t.Errorf("the Lease is %q; the README and rbac.yaml name nightly-report", r.name)
	}
	if len(r.cmdArgv) == 0 || r.cmdArgv[0] != "/bin/sh" {
		t.Errorf("CMD is %q, want the demo script under /bin/sh (busybox has it)", r.cmdArgv)
	}

	// Every $(VAR) in kubelease's own arguments must be an env var of the
	// container, or Kubernetes leaves it as it is: the holder would be the
	// literal "$(POD_NAME)", the same for every pod.
	dash := slices.Index(r.argv, "--")
	for _, a := range r.argv[:dash] {
		for _, m := range envRef.FindAllStringSubmatch(a, -1) {
			if _, ok := r.env[m[2]]; !ok {
				t.Errorf("argument %q refers to $(%s), which is not an env var of the container %q", a, m[2], r.container.Name)
			}
		}
	}
	fromField := func(flag, value, fieldPath string) {
		t.Helper()
		m := envRef.FindStringSubmatch(value)
		if m == nil || m[0] != value || r.env[m[2]] != fieldPath {
			t.Errorf("--%s %q: want $(VAR) of an env var from the downward API's %s", flag, value, fieldPath)
		}
	}
	fromField("id", r.id, "metadata.name")
	fromField("namespace", r.namespace, "metadata.namespace")

	// The pod and the Job around it.
	if r.pod.RestartPolicy != "Never" {
		t.Errorf("restartPolicy %q, want Never: a pod name is a unique --id only if each process has a pod of its own", r.pod.RestartPolicy)
	}
	if r.pod.ServiceAccountName == "" {
		t.Error("no serviceAccountName: the pod would run as the namespace's default account, which rbac.yaml does not bind")
	}
	if r.cronJob.Spec.ConcurrencyPolicy != "Allow" {
		t.Errorf("concurrencyPolicy %q: the example shows the Lease keeping overlapping runs apart (Allow)", r.cronJob.Spec.ConcurrencyPolicy)
	}
	// kubelet's default grace period is 30 s.
	if g := seconds(r.pod.TerminationGracePeriodSeconds, 30); g <= r.killAfter+releaseTimeout {
		t.Errorf("terminationGracePeriodSeconds %s: want more than --kill-after %s plus the release (%s)", g, r.killAfter, releaseTimeout)
	}
	if d := seconds(r.cronJob.Spec.JobTemplate.Spec.ActiveDeadlineSeconds, 0); d <= r.timeout {
		t.Errorf("activeDeadlineSeconds %s: want more than --timeout %s, or the Job ends while the run still waits", d, r.timeout)
	}
	// podFailurePolicy must name the exit status kubelease gives up with.
	var rules []examplePodFailureRule
	if pfp := r.cronJob.Spec.JobTemplate.Spec.PodFailurePolicy; pfp != nil {
		rules = pfp.Rules
	}
	found := false
	for _, rule := range rules {
		if rule.Action == "FailJob" && rule.OnExitCodes != nil && rule.OnExitCodes.Operator == "In" &&
			slices.Contains(rule.OnExitCodes.Values, r.conflict) &&
			(rule.OnExitCodes.ContainerName == "" || rule.OnExitCodes.ContainerName == r.container.Name) {
			found = true
		}
	}
	if !found {
		t.Errorf("podFailurePolicy has no FailJob rule for exit code %d (--conflict-exit-code) of container %q", r.conflict, r.container.Name)
	}
}

// seconds is *p seconds, def seconds when p is nil.
func seconds(p *int64, def int64) time.Duration {
	if p != nil {
		def = *p
	}
	return time.Duration(def) * time.Second
}

// access is one verb on leases, on the Lease name or on any Lease ("").
type access struct{ verb, name string }

// runNeeds is what "kubelease run NAME" needs on leases (README,
// "Permissions (RBAC)"): the KubernetesLease's verbs on NAME, or with
// --slots on each slot Lease, plus list and watch of all leases for the
// semaphore's NamespaceWatch (by label selector, so by no name).
func runNeeds(name string, slots int) map[access]bool {
	need := map[access]bool{{"create", ""}: true}
	names := []string{name}
	if slots > 1 {
		names = names[:0]
		for i := range slots {
			names = append(names, lease.SlotLeaseName(name, i))
		}
		need[access{"list", ""}] = true
		need[access{"watch", ""}] = true
	}
	for _, n := range names {
		for _, v := range []string{"get", "update", "delete", "watch"} {
			need[access{v, n}] = true
		}
	}
	return need
}

// grants reports whether rule allows verb on the lease name ("": on any).
func (rule examplePolicyRule) grants(verb, name string) bool {
	if !slices.Contains(rule.APIGroups, "coordination.k8s.io") && !slices.Contains(rule.APIGroups, "*") {
		return false
	}
	if !slices.Contains(rule.Resources, "leases") && !slices.Contains(rule.Resources, "*") {
		return false
	}
	if !slices.Contains(rule.Verbs, verb) && !slices.Contains(rule.Verbs, "*") {
		return false
	}
	return len(rule.ResourceNames) == 0 || (name != "" && slices.Contains(rule.ResourceNames, name))
}

func TestCronJobExampleRBAC(t *testing.T) {
	r := loadCronJobExample(t)
	ns := r.cronJob.Metadata.Namespace
	data, err := os.ReadFile(filepath.Join(cronjobExample, "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]exampleRBACObject{}
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var obj exampleRBACObject
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatalf("rbac.yaml: %v", err)
		}
		if obj.Kind == "" {
			continue
		}
		byKind[obj.Kind] = append(byKind[obj.Kind], obj)
		if obj.Metadata.Namespace != ns {
			t.Errorf("rbac.yaml: %s %s is in namespace %q, the CronJob in %q", obj.Kind, obj.Metadata.Name, obj.Metadata.Namespace, ns)
		}
	}
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding"} {
		if len(byKind[kind]) != 1 {
			t.Fatalf("rbac.yaml has %d %s objects, want 1", len(byKind[kind]), kind)
		}
	}
	sa, role, rb := byKind["ServiceAccount"][0], byKind["Role"][0], byKind["RoleBinding"][0]
	if sa.Metadata.Name != r.pod.ServiceAccountName {
		t.Errorf("rbac.yaml: ServiceAccount %q, but the pod runs as %q", sa.Metadata.Name, r.pod.ServiceAccountName)
	}
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Metadata.Name || rb.RoleRef.APIGroup != "rbac.authorization.k8s.io" {
		t.Errorf("rbac.yaml: the RoleBinding refers to %+v, not the Role %q", rb.RoleRef, role.Metadata.Name)
	}
	bound := false
	for _, s := range rb.Subjects {
		bound = bound || (s.Kind == "ServiceAccount" && s.Name == r.pod.ServiceAccountName && s.Namespace == ns)
	}
	if !bound {
		t.Errorf("rbac.yaml: the RoleBinding's subjects %+v do not include ServiceAccount %s/%s", rb.Subjects, ns, r.pod.ServiceAccountName)
	}

	need := runNeeds(r.name, r.slots)
	for a := range need {
		if !slices.ContainsFunc(role.Rules, func(rule examplePolicyRule) bool { return rule.grants(a.verb, a.name) }) {
			what := "leases (any name)"
			if a.name != "" {
				what = "the lease " + a.name
			}
			t.Errorf("rbac.yaml: the Role does not grant %q on %s, which kubelease run %s (--slots %d) needs", a.verb, what, r.name, r.slots)
		}
	}
	// And no more: every verb the Role grants is one the command needs, on
	// the names it needs it on.
	for _, rule := range role.Rules {
		for _, v := range rule.Verbs {
			names := rule.ResourceNames
			if len(names) == 0 {
				names = []string{""}
			}
			for _, n := range names {
				if !need[access{v, n}] && !need[access{v, ""}] {
					t.Errorf("rbac.yaml: the Role grants %q on %v %v (names %q), which kubelease run %s (--slots %d) does not need", v, rule.APIGroups, rule.Resources, n, r.name, r.slots)
				}
			}
		}
	}
}

// shellWords splits a shell command into words, honouring single and
// double quotes but no backslash escapes (enough for a Dockerfile's RUN
// line after its continuation lines are joined).
func shellWords(s string) []string {
	var words []string
	var b strings.Builder
	inWord := false
	var quote rune
	for _, c := range s {
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b.WriteRune(c)
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, b.String())
				b.Reset()
				inWord = false
			}
		default:
			b.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, b.String())
	}
	return words
}

// goBuildValueFlags are the go build flags that take a value.
var goBuildValueFlags = map[string]bool{
	"-C": true, "-o": true, "-ldflags": true, "-gcflags": true, "-asmflags": true, "-tags": true,
	"-p": true, "-mod": true, "-modfile": true, "-pgo": true, "-overlay": true, "-buildmode": true,
	"-compiler": true, "-gccgoflags": true, "-installsuffix": true, "-pkgdir": true, "-toolexec": true,
}

func TestCronJobExampleDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(cronjobExample, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	here, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")

	if !regexp.MustCompile(`(?m)^#\s+docker build -f examples/cronjob/Dockerfile (-t \S+ )?\.$`).MatchString(text) {
		t.Error("the Dockerfile's header does not say how to build it from the repository root (docker build -f examples/cronjob/Dockerfile -t ... .)")
	}

	var (
		stages   []string // FROM ... AS name, in order ("" when unnamed)
		workdir  = "/"
		ctxDir   string // where COPY . put the build context, in the build stage
		built    string // the -o of go build
		buildPkg string // the package go build built, as a path in the repository
		buildDir string // where go build ran (cd, -C), as a path in the repository
		final    []string
		lineNo   int
	)
	for line := range strings.SplitSeq(text, "\n") {
		lineNo++
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			w := shellWords(rest)
			name := ""
			if len(w) == 3 && strings.EqualFold(w[1], "AS") {
				name = w[2]
			}
			stages = append(stages, name)
			workdir = "/"
		case "WORKDIR":
			workdir = path.Join(workdir, rest)
			if path.IsAbs(rest) {
				workdir = path.Clean(rest)
			}
		case "COPY":
			w := shellWords(rest)
			if len(stages) > 1 {
				final = append(final, line)
			}
			if len(w) < 2 || strings.HasPrefix(w[0], "--") {
				continue
			}
			dest := w[len(w)-1]
			if !path.IsAbs(dest) {
				dest = path.Join(workdir, dest)
			}
			for _, src := range w[:len(w)-1] {
				if src == "." {
					ctxDir = path.Clean(dest)
					continue
				}
				if _, err := os.Stat(filepath.Join(repo, filepath.FromSlash(src))); err != nil {
					t.Errorf("Dockerfile line %d: COPY %s: no such file in the repository (the build context is its root)", lineNo, src)
				}
			}
		case "RUN":
			cwd := workdir
			for seg := range strings.SplitSeq(rest, "&&") {
				w := shellWords(seg)
				for len(w) > 0 && strings.Contains(w[0], "=") { // VAR=value prefixes
					w = w[1:]
				}
				switch {
				case len(w) == 2 && w[0] == "cd":
					cwd = path.Join(cwd, w[1])
					if path.IsAbs(w[1]) {
						cwd = path.Clean(w[1])
					}
				case len(w) >= 2 && w[0] == "go" && w[1] == "build":
					if !strings.Contains(seg, "CGO_ENABLED=0") || !slices.Contains(w, "-trimpath") {
						t.Errorf("Dockerfile line %d: %q: want CGO_ENABLED=0 and -trimpath (a static, reproducible binary)", lineNo, strings.TrimSpace(seg))
					}
					dir, pkgs := cwd, []string(nil)
					for i := 2; i < len(w); i++ {
						flag, val, hasVal := strings.Cut(w[i], "=")
						switch {
						case !strings.HasPrefix(w[i], "-"):
							pkgs = append(pkgs, w[i])
						case goBuildValueFlags[flag] && !hasVal && i+1 < len(w):
							val = w[i+1]
							i++
							fallthrough
						default:
							switch flag {
							case "-C":
								dir = path.Join(dir, val)
							case "-o":
								built = val
							}
						}
					}
					if len(pkgs) != 1 {
						t.Fatalf("Dockerfile line %d: go build of %q, want one package", lineNo, pkgs)
					}
					pkg := path.Join(dir, pkgs[0])
					if ctxDir == "" || (pkg != ctxDir && !strings.HasPrefix(pkg, ctxDir+"/")) {
						t.Fatalf("Dockerfile line %d: go build of %s, which is not in the build context (COPY . to %q)", lineNo, pkg, ctxDir)
					}
					buildPkg = strings.TrimPrefix(strings.TrimPrefix(pkg, ctxDir), "/")
					if dir != ctxDir && !strings.HasPrefix(dir, ctxDir+"/") {
						t.Fatalf("Dockerfile line %d: go build runs in %s, outside the build context (COPY . to %q)", lineNo, dir, ctxDir)
					}
					buildDir = strings.TrimPrefix(strings.TrimPrefix(dir, ctxDir), "/")
				}
			}
		}
	}
	if buildPkg == "" {
		t.Fatal("the Dockerfile has no RUN ... go build")
	}
	got, err := filepath.Abs(filepath.Join(repo, filepath.FromSlash(buildPkg)))
	if err != nil {
		t.Fatal(err)
	}
	if got != here {
		t.Errorf("the Dockerfile builds %s (in the repository), want cmd/kubelease, this module", buildPkg)
	}
	// go build uses the module whose go.mod is nearest above where it runs:
	// from the repository root, "go build ./cmd/kubelease" fails (the root
	// module does not contain it; cmd/kubelease is a module of its own).
	mod, err := filepath.Abs(filepath.Join(repo, filepath.FromSlash(buildDir)))
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(mod, "go.mod")); err == nil {
			break
		}
		up := filepath.Dir(mod)
		if up == mod || !strings.HasPrefix(up, repo) {
			mod = ""
			break
		}
		mod = up
	}
	if mod != here {
		t.Errorf("go build runs in %q of the repository, in the module at %q, not in cmd/kubelease's module: cd cmd/kubelease (or go build -C cmd/kubelease) first", buildDir, mod)
	}
	if built == "" {
		t.Error("go build has no -o")
	}
	want := "COPY --from=" + stages[0] + " " + built + " /usr/local/bin/kubelease"
	if !slices.Contains(final, want) {
		t.Errorf("the final stage does not %q; its COPY lines: %q", want, final)
	}
}
