package workflows

import "github.com/fulfillment-server/fulfillment/activities"

// readModel presents an instance's state to the read model: the row the
// admin API and queryInstance read, and the details it shows beyond the
// state (policy, parked step, supervision, deadlines).
func readModel(s Snapshot) activities.ReadModel {
	m := activities.ReadModel{
		InstanceID: s.InstanceID, OrderID: s.OrderID, OrderLineID: s.OrderLineID, Debug: s.Debug,
		State: string(s.State), Reason: s.Reason, Order: s.Order, ExpireTime: s.ExpireTime, AppInfo: s.AppInfo,
		Revision: s.Revision,
		Details:  activities.InstanceDetails{FrozenBy: s.FrozenBy, UnfreezeDueAt: s.UnfreezeDueAt},
	}
	d := &m.Details
	if s.State != StateProvisioning || s.Policy.Retention > 0 {
		d.Policy = &activities.PolicyDetails{
			FreezeGrace:   s.Policy.FreezeGrace.String(),
			Retention:     s.Policy.Retention.String(),
			ReleasePolicy: s.Policy.ReleasePolicy,
			Supervised:    s.Policy.Supervised,
		}
		if s.Policy.Supervised {
			d.Policy.SupervisionSyncDelay = s.Policy.SupervisionSyncDelay.String()
			d.Policy.SupervisionReviewed = s.Policy.SupervisionReviewed
			if s.Policy.SupervisionStallAlert > 0 {
				d.Policy.SupervisionStallAlert = s.Policy.SupervisionStallAlert.String()
			}
		}
	}
	if s.GraceExtension > 0 {
		d.GraceExtension = s.GraceExtension.String()
	}
	if p := s.Parked; p != nil {
		d.Parked = &activities.ParkedDetails{Step: p.Step, Error: p.Error, Since: p.Since.UTC()}
	}
	if sup := s.Supervision; sup != nil {
		d.Supervision = &activities.SupervisionDetails{
			RequirementsAt: sup.RequirementsAt, RequirementsConfirmedAt: sup.RequirementsConfirmedAt,
			RequirementRejections: sup.RequirementRejections, Result: sup.Result,
			ReviewedAt: sup.ReviewedAt, ReviewRejections: sup.ReviewRejections,
			WaitingSince: sup.WaitingSince, StallAlertedAt: sup.StallAlertedAt,
			Evidence: sup.Evidence, DeclaredStart: sup.DeclaredStart, DeliveredAt: sup.DeliveredAt,
			AcceptedAt: sup.AcceptedAt, CompletedAt: sup.CompletedAt, Rejections: sup.Rejections,
			AppealedFrom: string(sup.AppealedFrom), AppealReason: sup.AppealReason,
		}
	}
	if c := s.PackageCycle; c != nil {
		d.PackageCycle = &activities.PackageCycleDetails{Reset: c.Reset, Number: c.Number, Start: c.Start(), End: c.End()}
	}
	for _, dl := range s.Deadlines {
		d.Deadlines = append(d.Deadlines, activities.DeadlineDetails{Kind: dl.Kind, At: dl.At.UTC(), Why: dl.Why})
	}
	if len(d.Deadlines) > 0 {
		next := d.Deadlines[0]
		m.NextDeadline = &next
	}
	return m
}
