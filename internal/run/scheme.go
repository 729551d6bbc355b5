package run

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/lastcall-dev/lastcall/api/v1alpha1"
)

// Scheme knows the built-in kinds (pods, the workloads a targetRef names)
// and lastcall's: the one scheme of every lastcall client and manager.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
