package workflows

import (
	"strings"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// MeterByItself makes the metering workflows of env meter as the runs that
// began before the usage collector did (each closes and pushes its own
// periods, hour by hour): the code path that running purchases replay
// until they hand over. Every other change takes its newest version (all
// changes go from DefaultVersion to 1 so far: a mock must match the
// versions a call names).
func MeterByItself(env *testsuite.TestWorkflowEnvironment) {
	env.OnGetVersion(mock.Anything, workflow.DefaultVersion, 1).Return(
		func(changeID string, _, maxSupported workflow.Version) workflow.Version {
			if strings.HasPrefix(changeID, batchedMeteringChange+"/") {
				return workflow.DefaultVersion
			}
			return maxSupported
		})
}
