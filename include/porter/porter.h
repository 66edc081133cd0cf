// Porter: durable background jobs for C++20. Include this for everything.
#pragma once

#include "porter/admin.h"
#include "porter/clock.h"
#include "porter/cron.h"
#include "porter/diagnostics.h"
#include "porter/engine.h"
#include "porter/job.h"
#include "porter/retention.h"
#include "porter/retry.h"
#include "porter/status.h"
#include "porter/store.h"
