SELECT name, paused, max_depth FROM queues WHERE name = %(name)s
