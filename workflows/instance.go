package workflows

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/fulfillment-server/fulfillment/activities"
)

// maxAppliedKeys bounds the memory of applied callback keys. The inbox
// already deduplicates redeliveries; this memory catches the same recorded
// callback signalled twice (by the API and by the relay), which happens
// within seconds, so a few hundred keys are plenty for years of life.
const maxAppliedKeys = 500

// The workflow continues as new before its history grows large, even when
// the server has not suggested it yet: past historyLimit events, or after
// callbacksPerRun callbacks and operator actions (each adds about a dozen
// events). Variables so that tests can reach them quickly.
var (
	historyLimit    = 8000
	callbacksPerRun = 300
)

// InstanceWorkflow owns the lifecycle of one purchased instance: it fetches
// the order, provisions the tenant, applies every marketplace callback that
// arrives as a CallbackSignal (each once, in arrival order), keeps the
// timers of the marketplace's rules (expiry, freeze grace, retention,
// supervision), and carries out operators' actions (OperatorSignal). It
// never fails: a step that cannot be done parks the instance, visibly, until
// an operator retries or skips it.
func InstanceWorkflow(ctx workflow.Context, in InstanceInput) error {
	w := newInstanceWorkflow(in)
	if err := w.registerHandlers(ctx); err != nil {
		return err
	}
	sig := newSignals(ctx)
	sig.listen(ctx, w)

	if in.Carried == nil {
		w.steps.provision(ctx)
	}
	for {
		if w.s.State == StateReleased {
			return w.finish(ctx, func() { sig.drain(ctx, w) })
		}
		if !w.fireDueDeadlines(ctx) {
			continue
		}
		if w.handleQueued(ctx) {
			continue
		}
		if w.historyIsLong(ctx) {
			carried, err := sig.quiesce(ctx, w)
			if err != nil || !carried {
				// Work arrived meanwhile (or the workflow is ending):
				// it comes first.
				if err != nil {
					return err
				}
				continue
			}
			snapshot := w.snapshot(ctx)
			// The next run's history starts with this code: it takes the
			// newest behaviour.
			return workflow.NewContinueAsNewError(ctx, InstanceWorkflowName, InstanceInput{
				InstanceID: w.s.InstanceID, OrderID: w.s.OrderID, OrderLineID: w.s.OrderLineID,
				Debug: w.s.Debug, Carried: &snapshot, Generation: InstanceGeneration,
			})
		}
		if err := w.waitForWork(ctx); err != nil {
			return err
		}
	}
}

// handleQueued handles the next queued piece of work, operators' actions
// first, then internal signals, then callbacks in arrival order. It
// reports whether there was one.
func (w *instanceWorkflow) handleQueued(ctx workflow.Context) bool {
	switch {
	case len(w.ops) > 0:
		op := w.ops[0]
		w.ops = w.ops[1:]
		w.handleOperator(ctx, op)
	case len(w.internal) > 0:
		in := w.internal[0]
		w.internal = w.internal[1:]
		w.payPerUse.handle(ctx, in)
	case len(w.pending) > 0:
		cb := w.pending[0]
		w.pending = w.pending[1:]
		w.apply(ctx, cb)
	default:
		return false
	}
	return true
}

// signals are the instance workflow's three signal channels: the
// marketplace's callbacks, operators' actions and the workflow's own
// internal signals.
type signals struct {
	callbacks, operators, internals workflow.ReceiveChannel
}

func newSignals(ctx workflow.Context) signals {
	return signals{
		callbacks: workflow.GetSignalChannel(ctx, CallbackSignal),
		operators: workflow.GetSignalChannel(ctx, OperatorSignal),
		internals: workflow.GetSignalChannel(ctx, InternalSignal),
	}
}

// listen queues every signal on w as it arrives, in the background.
func (sig signals) listen(ctx workflow.Context, w *instanceWorkflow) {
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var cb Callback
			sig.callbacks.Receive(ctx, &cb)
			w.receive(ctx, cb)
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var op OperatorRequest
			sig.operators.Receive(ctx, &op)
			w.ops = append(w.ops, op)
		}
	})
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var in Internal
			sig.internals.Receive(ctx, &in)
			w.payPerUse.receive(in)
		}
	})
}

// drain queues the signals already received but not read yet, which the
// background receivers may not have taken when the workflow decides to end
// or restart its history.
func (sig signals) drain(ctx workflow.Context, w *instanceWorkflow) {
	for {
		var cb Callback
		if !sig.callbacks.ReceiveAsync(&cb) {
			break
		}
		w.receive(ctx, cb)
	}
	for {
		var op OperatorRequest
		if !sig.operators.ReceiveAsync(&op) {
			break
		}
		w.ops = append(w.ops, op)
	}
	for {
		var in Internal
		if !sig.internals.ReceiveAsync(&in) {
			break
		}
		w.payPerUse.receive(in)
	}
}

// quiesce prepares continue-as-new: signals received in the same task as
// the decision must not be lost, so they are taken first, and so are those
// arriving while update handlers finish. It reports whether the workflow
// is idle and may restart its history; if not, the work comes first.
func (sig signals) quiesce(ctx workflow.Context, w *instanceWorkflow) (bool, error) {
	queued := func() bool { return len(w.pending)+len(w.ops)+len(w.internal) > 0 }
	if sig.drain(ctx, w); queued() {
		return false, nil
	}
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return false, err
	}
	if sig.drain(ctx, w); queued() {
		return false, nil
	}
	return true, nil
}

// waitForWork blocks until a callback or operator action arrives, the next
// deadline is due, or the history should be restarted.
func (w *instanceWorkflow) waitForWork(ctx workflow.Context) error {
	ready := func() bool {
		return len(w.pending) > 0 || len(w.ops) > 0 || len(w.internal) > 0 || w.historyIsLong(ctx)
	}
	next, ok := w.s.nextDeadline(workflow.Now(ctx))
	if ok && !representable(next.At) &&
		workflow.GetVersion(ctx, farFutureDeadlineChange, workflow.DefaultVersion, 1) != workflow.DefaultVersion {
		ok = false // never due; earlier runs waited on a timer of the longest duration instead
	}
	if !ok {
		return workflow.Await(ctx, ready)
	}
	wait := next.At.Sub(workflow.Now(ctx))
	if wait <= 0 {
		return nil
	}
	if w.generation < GenerationKeptDeadlineTimer {
		_, err := workflow.AwaitWithTimeout(ctx, wait, ready)
		return err
	}
	t := &w.deadlineTimer
	if t.number == 0 || t.fired || next.At.Before(t.at) {
		t.start(ctx, next.At, wait)
	}
	return workflow.Await(ctx, func() bool { return ready() || t.fired })
}

// deadlineTimer is the timer the workflow waits on for its next deadline.
// It is kept across waits (a callback that leaves the deadline where it
// was starts no timer), and replaced only by an earlier deadline or when
// it fires; a deadline moved later (a renewal) is waited for once the
// timer of the earlier one has fired. Each timer started is an event in
// the history, so this saves one per callback.
type deadlineTimer struct {
	at     time.Time
	number int  // of the current timer; an older one that fires is ignored
	fired  bool // the current timer has fired
}

func (t *deadlineTimer) start(ctx workflow.Context, at time.Time, wait time.Duration) {
	t.number++
	t.at, t.fired = at, false
	number, timer := t.number, workflow.NewTimer(ctx, wait)
	workflow.Go(ctx, func(ctx workflow.Context) {
		if err := timer.Get(ctx, nil); err == nil && t.number == number {
			t.fired = true
		}
	})
}

// farFutureDeadlineChange is the GetVersion change ID of not waiting on a
// deadline past the year 9999 at all.
const farFutureDeadlineChange = "far-future-deadline-never-due"

// instanceWorkflow is the state of one run. Everything that must outlive
// the run is in s; pending, ops and events are emptied before it ends.
type instanceWorkflow struct {
	s       Snapshot
	pending []Callback        // received, not yet applied; ordered by Seq
	ops     []OperatorRequest // received operator actions, in arrival order
	events  []Event           // timeline entries not yet saved
	// internal holds messages from the metering workflow and packages;
	// meteringFlushed is set when the metering's final flush is done.
	internal        []Internal
	meteringFlushed bool
	// shownState is the state last written to the search attribute.
	shownState State
	// generation is the behaviour this run was started with
	// (InstanceInput.Generation); deadlineTimer the timer of the next
	// deadline from GenerationKeptDeadlineTimer on.
	generation    int
	deadlineTimer deadlineTimer
	// appliedThisRun counts the callbacks and actions handled in this run.
	appliedThisRun int

	// The parts of the workflow that act for it, each on one concern.
	steps       stepRunner      // steps that call activities, park and retry
	payPerUse   payPerUse       // metering, packages
	supervision supervisionFlow // service supervision
}

// stepRunner runs the steps that call activities: a failure that retries
// cannot fix parks the step until an operator retries or skips it.
type stepRunner struct{ w *instanceWorkflow }

// payPerUse is a pay-per-use instance's metering workflow and the packages
// that stop it when used up.
type payPerUse struct{ w *instanceWorkflow }

// supervisionFlow walks a supervised order through delivery, acceptance and
// completion (contract §5.3).
type supervisionFlow struct{ w *instanceWorkflow }

func newInstanceWorkflow(in InstanceInput) *instanceWorkflow {
	w := &instanceWorkflow{s: Snapshot{
		InstanceID:  in.InstanceID,
		OrderID:     in.OrderID,
		OrderLineID: in.OrderLineID,
		Debug:       in.Debug,
		State:       StateProvisioning,
	}}
	if in.Carried != nil {
		w.s = *in.Carried
		w.s.Pending, w.s.Deadlines = 0, nil
		w.shownState = w.s.State
	}
	w.generation = in.Generation
	if in.Carried == nil && in.Generation >= GenerationKnownDirectory {
		w.s.DirectoryKnown = true
	}
	if in.Carried == nil && in.Generation >= GenerationStateShownAtStart {
		w.shownState = StateProvisioning
	}
	w.steps, w.payPerUse, w.supervision = stepRunner{w}, payPerUse{w}, supervisionFlow{w}
	return w
}

func (w *instanceWorkflow) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, StateQuery, func() (Snapshot, error) {
		return w.snapshot(ctx), nil
	}); err != nil {
		return fmt.Errorf("register %s query: %w", StateQuery, err)
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, ChangeCheckUpdate, w.checkChange,
		workflow.UpdateHandlerOptions{Validator: validateChangeCheck}); err != nil {
		return fmt.Errorf("register %s update: %w", ChangeCheckUpdate, err)
	}
	return nil
}

// snapshot is the state as shown: with the pending count and the coming
// deadlines.
func (w *instanceWorkflow) snapshot(ctx workflow.Context) Snapshot {
	s := w.s
	s.Applied = slices.Clone(w.s.Applied)
	s.Pending = len(w.pending)
	s.Deadlines = shownDeadlines(w.s.deadlines(workflow.Now(ctx)))
	return s
}

func (w *instanceWorkflow) historyIsLong(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > historyLimit ||
		w.appliedThisRun >= callbacksPerRun
}

// receive queues a callback unless it was applied or is already queued.
func (w *instanceWorkflow) receive(ctx workflow.Context, cb Callback) {
	if slices.Contains(w.s.Applied, cb.Key) ||
		slices.ContainsFunc(w.pending, func(p Callback) bool { return p.Key == cb.Key }) {
		workflow.GetLogger(ctx).Info("Duplicate callback ignored", "key", cb.Key, "seq", cb.Seq)
		return
	}
	w.s.LastCallbackAt = workflow.Now(ctx)
	w.pending = append(w.pending, cb)
	slices.SortStableFunc(w.pending, func(a, b Callback) int { return cmp.Compare(a.Seq, b.Seq) })
}

func (s *Snapshot) markApplied(key string) {
	s.Applied = append(s.Applied, key)
	if extra := len(s.Applied) - maxAppliedKeys; extra > 0 {
		s.Applied = slices.Delete(s.Applied, 0, extra)
	}
}

// finish ends the workflow after release. Callbacks and operator actions
// still queued, or arriving while handlers finish, have nothing left to act
// on and are recorded as such.
func (w *instanceWorkflow) finish(ctx workflow.Context, drain func()) error {
	for {
		drain()
		for _, cb := range w.pending {
			w.record(ctx, "callback/"+cb.Key, "ignored", fmt.Sprintf("%s after release; ignored.", cb.Activity))
			w.s.markApplied(cb.Key)
		}
		for _, op := range w.ops {
			w.supervision.reject(ctx, op, "the instance is released")
		}
		w.pending, w.ops = nil, nil
		if len(w.events) > 0 {
			w.save(ctx)
		}
		if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
			return err
		}
		if drain(); len(w.pending)+len(w.ops) == 0 {
			return nil
		}
	}
}

// record queues a timeline event for the next save.
func (w *instanceWorkflow) record(ctx workflow.Context, key, kind, message string) {
	w.events = append(w.events, Event{Key: key, Kind: kind, Message: message, At: workflow.Now(ctx)})
}

// save writes the read model and the queued events, and shows the state in
// the search attributes. The read model must eventually be written, so the
// activity retries without limit; it is idempotent by revision and key.
func (w *instanceWorkflow) save(ctx workflow.Context) {
	w.s.Revision++
	input := activities.SaveInput{Snapshot: readModel(w.snapshot(ctx)), Events: w.events}
	w.events = nil
	if err := execute(ctx, saveOptions, acts.SaveInstance, input).Get(ctx, nil); err != nil {
		// Only cancellation ends an unlimited retry; the state stays in
		// the workflow and the next save writes it.
		workflow.GetLogger(ctx).Error("Read model not saved", "revision", w.s.Revision, "error", err)
	}
	if w.shownState != w.s.State {
		if err := workflow.UpsertTypedSearchAttributes(ctx, StateAttribute.ValueSet(string(w.s.State))); err != nil {
			workflow.GetLogger(ctx).Error("State search attribute not updated", "error", err)
		} else {
			w.shownState = w.s.State
		}
	}
}
