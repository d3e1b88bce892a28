package koogallery

import "time"

// Delivery is how KooGallery delivers a callback (§4.1): whether it
// calls again after a failed answer (anything but HTTP 200 with 000000, or
// no answer within about 20 s), how often and for how long.
type Delivery struct {
	// Retried is true when the marketplace calls again after a failure.
	Retried bool
	// Interval and Window: the marketplace calls again every Interval
	// until Window has passed since the first call. Zero Window with
	// Retried means "until it succeeds" (queryInstance polling).
	Interval time.Duration
	Window   time.Duration
	// SentOnceSomewhere is true when some source says the callback is sent
	// only once. The server then never relies on a retry: such a callback
	// is never answered with a failure caused by the server's own faults.
	SentOnceSomewhere bool
	// Afterwards is what the marketplace does when the window ends.
	Afterwards string
	// Source cites the section of docs/contract.md it rests on and the
	// conflicts that section records.
	Source string
}

// RetryInterval1h is the assumed interval within the 1-hour windows: the
// documentation gives the window, not the interval (§4.1, §7.4).
const RetryInterval1h = 10 * time.Minute

// Deliveries is the marketplace's delivery mode of every V2 activity. For
// updateInstanceStatus it is that of FREEZE; see DeliveryOf for UNFREEZE.
var Deliveries = map[Activity]Delivery{
	ActivityNewInstance: {
		Retried: true, Interval: time.Hour, Window: 3 * time.Hour,
		Afterwards: "the order is judged failed, unsubscribed and refunded; the console can restart the call during the window",
		Source:     "contract §4.1: V1 newInstance, hourly for 3 h; V2 pages state no duration, the V1 behaviour is assumed",
	},
	ActivityQueryInstance: {
		Retried:    true,
		Afterwards: "polled until it returns the instance information",
		Source:     "contract §4.1: queryInstance after create is polled continuously until it succeeds",
	},
	ActivityRefreshInstance: {
		Retried: false, SentOnceSomewhere: true,
		Afterwards: "an operator restarts it from 生产接口消息; a lost renewal can lead to a wrongful release",
		Source:     "contract §4.1: renewal 1 h on some pages, called once only on saascenter_0132; treated as once",
	},
	ActivityUpdateInstanceStatus: {
		Retried: true, Interval: RetryInterval1h, Window: time.Hour,
		Afterwards: "stops; an operator restarts it from 生产接口消息",
		Source:     "contract §4.1: expiry (FREEZE) retried for 1 h",
	},
	ActivityReleaseInstance: {
		Retried: true, Interval: RetryInterval1h, Window: time.Hour, SentOnceSomewhere: true,
		Afterwards: "stops; an operator restarts it from 生产接口消息",
		Source:     "contract §4.1: release 1 h on the user-manual and intl pages, once on saascenter_0134",
	},
	ActivityUpgradeInstance: {
		Retried: true, Interval: time.Hour, Window: 3 * time.Hour,
		Afterwards: "the order fails and is unsubscribed",
		Source:     "contract §4.1: V1 upgrade, 3 h",
	},
	ActivityChangeInstanceCheck: {
		Retried:    false,
		Afterwards: "the buyer's change is refused; the buyer may try again",
		Source:     "contract §1.8: asked synchronously while the buyer places the order",
	},
	ActivityOrderNotify: {
		Retried: true, Interval: time.Hour, Window: 3 * time.Hour,
		Afterwards: "an operator restarts it from 生产接口消息",
		Source:     "contract §4.1: orderNotify, 3 h",
	},
	ActivityGetLicenseAsync: {
		Retried: true, Interval: 2 * time.Minute, Window: 2 * time.Hour,
		Afterwards: "the device's licence request fails; the buyer asks again",
		Source:     "contract §13.2: the License guide's create schedule, every 2 min for 2 h",
	},
	ActivityRefreshLicenseCode:      licenseCodeDelivery,
	ActivityUpdateLicenseCodeStatus: licenseCodeDelivery,
	ActivityReleaseLicenseCode:      licenseCodeDelivery,
}

// licenseCodeDelivery: each license-code callback is sent 60 times, every
// 2 minutes, until it is answered 000000 (§13.5).
var licenseCodeDelivery = Delivery{
	Retried: true, Interval: 2 * time.Minute, Window: 2 * time.Hour,
	Afterwards: "the marketplace stops calling; the code's change is lost to the merchant",
	Source:     "contract §13.5: every 2 min, 60 times",
}

// unfreezeDelivery: only the expiry FREEZE's retry is documented; an
// UNFREEZE after a renewal is treated as sent once.
var unfreezeDelivery = Delivery{
	Retried: false, SentOnceSomewhere: true,
	Afterwards: "an operator restarts it from 生产接口消息",
	Source:     "contract §4.1 documents the retry of the expiry FREEZE only; UNFREEZE is treated as once",
}

// DeliveryOf returns the delivery mode of a request.
func DeliveryOf(req Request) Delivery {
	if s, ok := req.(*UpdateInstanceStatusRequest); ok && s.Status == StatusUnfreeze {
		return unfreezeDelivery
	}
	return Deliveries[req.Activity()]
}

// MustNotFail reports whether the marketplace might not call again after a
// failed answer, so that the merchant must accept the callback even when
// its own systems are briefly failing.
func (d Delivery) MustNotFail() bool { return !d.Retried || d.SentOnceSomewhere }
