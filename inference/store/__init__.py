"""The store: every Redis key of the installation, and the only code that touches one (tests/test_layering.py).

A new Redis key goes here: in the submodule its kind belongs to, and in the table below. The other modules
call the store with plain values; the web side builds its parts in edgeportal.core.queueing.

  queue.py       the scheduler's keys and their Lua scripts (JobQueue, SettingsStore); admission's snapshot
                 (JobQueue.admission_view) reads everything a decision needs in one round trip
  job_events.py  a job's event stream (JobEvents): the worker writes it, without Django
  web.py         the web side's keys (WebStore): prompt caches, rate limit, refusal counts, trend, exits queue

Every key lives under the installation's prefix, <prefix> (EDGE_REDIS_PREFIX; each test its own); a pool's
under <pool> = <prefix>:pool:<model>@<device class> (inference.pools). Every name and format here is one a
running node already holds: change one and its data is lost.

queue.py, under <pool>:
  lane:{short|long}          sorted set  job id -> rank (deadline minus its priority's head start, ms)
  deadlines                  sorted set  job id -> deadline (ms, Redis clock), for the expiry timer
  leased                     sorted set  job id -> lease end (ms, Redis clock), jobs in a worker's batch
  job:{id}                   hash        what the worker needs to run it; `kept`: its output once the model ran
                                         it, until the database stored it (inference.kept_results)
  held:{lane}                sorted set  "<expiry ms>:<token>" -> rank: places admission holds for jobs it
                                         accepts until they are queued (JobQueue.hold_place_in), so concurrent
                                         requests see each other
  wake                       list        one token per enqueue, so idle workers block instead of polling
  stats                      hash        measured batch times per lane and the arrival rate (moving averages)
  jobs:dead                  stream      jobs buried after killing workers again and again (capped)
  waiting-by-owner           hash        sender (job:{id}'s owner) -> its jobs waiting in the lanes (fair share)
  busy                       hash        worker -> when its batch should end (Redis clock, s)
  long-runs                  hash        worker -> its long batch's finish-by and model time left
  probe:{lane}               string      the one probe an idle lane takes at a time
  workers                    sorted set  worker -> last heartbeat (JobQueue.beat)
  lane-workers:{lane}        sorted set  the workers serving the lane -> last heartbeat
  workers:{name}             hash        what a worker runs and the settings it applied, gone without heartbeats
queue.py, under <prefix>:
  scheduler                  hash        the live settings overrides and their _version (SettingsStore)
  pools                      hash        pool name -> last heartbeat of a worker serving it
  pools:used                 set         every pool a job was queued in
job_events.py, under <prefix>:
  job:{id}:events            stream      a job's text step by step, its token count, then its end; kept 600 s
                                         past its last event
web.py, under <prefix> (minutes on Redis' clock):
  cache:result:{key}         string      the exact prompt cache: a result as JSON, kept the cache's TTL
  cache:semantic:{group}     list        the semantic cache: entries as JSON, newest first
  rate:{source id}:{minute}  string      a source's requests in a minute of the host's clock, kept 120 s
  lookups:version            string      raised when a source or a blocked pattern changes (core.lookups)
  refusals:minutes           sorted set  the minutes that hold refusal counts not yet stored (jobs.refusals)
  refusals:{minute}          hash        group -> refusals in that minute
  refusals:{minute}:sample   hash        group -> the first message of the group in that minute
  refusals:flushing          string      held (60 s at most) by the one flush that runs
  trend:{minute}             hash        the dashboard's counts of a minute (monitoring.trend)
  exits                      list        Celery's messages of the exits queue (delivery.queues)
Celery's own keys are Celery's: its default queue, <prefix>:celery (CELERY_TASK_DEFAULT_QUEUE), and what its
Redis transport keeps beside its queues.
"""
