package lease

import (
	"fmt"
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// sharedProblems reports what is wrong with Labels and SharedWatch, each
// naming the field and its value: keys or values that are not valid
// labels, a SharedWatch of another namespace than the Lease's, and Labels
// that its selector would not match (so that it would never see a Lease
// this lease creates).
func (s Settings) sharedProblems() []string {
	var problems []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			problems = append(problems, fmt.Sprintf("Labels key %q is not a label key: %s", k, msgs[0]))
		}
		if msgs := validation.IsValidLabelValue(s.Labels[k]); len(msgs) > 0 {
			problems = append(problems, fmt.Sprintf("Labels[%q] value %q is not a label value: %s", k, s.Labels[k], msgs[0]))
		}
	}
	w := s.SharedWatch
	if w == nil {
		return problems
	}
	ns := s.Namespace
	if ns == "" && s.Config != nil {
		ns = s.Config.Namespace
	}
	if ns == "" {
		ns = "default"
	}
	if ns != w.ns {
		problems = append(problems, fmt.Sprintf("SharedWatch watches namespace %q but the Lease is in namespace %q", w.ns, ns))
	}
	if !w.sel.Matches(labels.Set(s.Labels)) {
		problems = append(problems, fmt.Sprintf("Labels %q do not match SharedWatch's labelSelector %q (it would not see a Lease this lease creates)", labels.Set(s.Labels).String(), w.selector))
	}
	return problems
}
