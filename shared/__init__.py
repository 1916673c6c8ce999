"""Code the schedule service, the booking service and the gateway share."""
