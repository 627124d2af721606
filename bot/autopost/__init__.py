"""Scheduled posts: the time rules (:mod:`.timing`) and the poster loop (:mod:`.poster`)."""
