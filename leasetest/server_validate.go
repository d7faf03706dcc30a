package leasetest

import (
	"encoding/json"
	"strings"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validLeaseStrategies are the Kubernetes-defined (unprefixed) values of
// spec.strategy.
var validLeaseStrategies = []string{"OldestEmulationVersion"}

// validateCreate validates a Lease about to be created, as ValidateLease
// of kube-apiserver does.
func validateCreate(l *Lease) field.ErrorList {
	errs := apivalidation.ValidateObjectMeta(&l.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(errs, validateSpec(&l.Spec, field.NewPath("spec"))...)
}

// validateUpdate validates an update of old to l: the common object-meta
// checks of every update, then those of ValidateLeaseUpdate.
func validateUpdate(l, old *Lease) field.ErrorList {
	meta := field.NewPath("metadata")
	errs := apivalidation.ValidateObjectMeta(&l.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, meta)
	errs = append(errs, apivalidation.ValidateObjectMetaUpdate(&l.ObjectMeta, &old.ObjectMeta, meta)...)
	return append(errs, validateSpec(&l.Spec, field.NewPath("spec"))...)
}

// validateSpec is ValidateLeaseSpec.
func validateSpec(s *LeaseSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.LeaseDurationSeconds != nil && *s.LeaseDurationSeconds <= 0 {
		errs = append(errs, field.Invalid(p.Child("leaseDurationSeconds"), *s.LeaseDurationSeconds, "must be greater than 0"))
	}
	if s.LeaseTransitions != nil && *s.LeaseTransitions < 0 {
		errs = append(errs, field.Invalid(p.Child("leaseTransitions"), *s.LeaseTransitions, "must be greater than or equal to 0"))
	}
	strategy := unknownString(s, "strategy")
	if strategy != "" {
		errs = append(errs, validateStrategy(strategy, p.Child("strategy"))...)
	}
	if unknownString(s, "preferredHolder") != "" && strategy == "" {
		errs = append(errs, field.Forbidden(p.Child("preferredHolder"), "may only be specified if `strategy` is defined"))
	}
	return errs
}

// validateStrategy is ValidateCoordinatedLeaseStrategy: a Kubernetes-defined
// strategy, or a domain-prefixed qualified name.
func validateStrategy(strategy string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !strings.Contains(strategy, "/") {
		for _, v := range validLeaseStrategies {
			if v == strategy {
				return nil
			}
		}
		return append(errs, field.NotSupported(p, strategy, validLeaseStrategies))
	}
	for _, msg := range validation.IsQualifiedName(strategy) {
		errs = append(errs, field.Invalid(p, strategy, msg))
	}
	return errs
}

// unknownString returns the string value of a kept spec field, or "".
func unknownString(s *LeaseSpec, name string) string {
	raw, ok := s.Unknown[name]
	if !ok {
		return ""
	}
	var v string
	_ = json.Unmarshal(raw, &v)
	return v
}
