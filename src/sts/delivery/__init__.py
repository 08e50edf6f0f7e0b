"""Token delivery: from "paid" to "accepted by the meter" (issue 9).

A sale writes its delivery jobs in its own transaction (`outbox.enqueue`, the transactional
outbox); a dispatcher (`worker.Dispatcher`, inside `sts serve` or a separate `sts deliver run`)
hands them to carriers (SMS over an HTTP gateway, e-mail over SMTP, AMI push over MQTT) with
retries, backoff and jitter, and the meters' answers close the loop.  See docs/delivery.md.
"""
