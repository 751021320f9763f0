-- Argo CD custom health check for paydeck.dev/PaymentService (argocd-cm key
-- resource.customizations.health.paydeck.dev_PaymentService; argocd-cm.yaml embeds this file).
-- Reads only what the operator publishes in status (observedGeneration, phase, message and
-- kstatus-style conditions), in this order:
--   generation not yet observed          -> Progressing
--   Degraded or Stalled True / Degraded   -> Degraded (with the condition's message)
--   phase Paused                          -> Suspended (a canary waits at a pause step)
--   Reconciling or Progressing True       -> Progressing
--   phase Healthy and Ready True for the current generation -> Healthy
--   anything else                         -> Progressing
local hs = {}

local function condition(status, kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- The first argument that is a non-empty string (arguments may be nil).
local function text(...)
  for i = 1, select("#", ...) do
    local candidate = select(i, ...)
    if type(candidate) == "string" and candidate ~= "" then
      return candidate
    end
  end
  return ""
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
local status = obj.status

if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the PaymentService"
  return hs
end

if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local degraded = condition(status, "Degraded")
local stalled = condition(status, "Stalled")
if is_true(degraded) then
  hs.status = "Degraded"
  hs.message = text(degraded.message, degraded.reason, status.message, "Degraded")
  return hs
end
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = text(stalled.message, stalled.reason, status.message, "Stalled")
  return hs
end
if status.phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = text(status.message, "Degraded")
  return hs
end

if status.phase == "Paused" then
  hs.status = "Suspended"
  local paused = "Canary paused"
  if status.canary ~= nil and status.canary.stepIndex ~= nil then
    paused = "Canary paused at step " .. status.canary.stepIndex
  end
  hs.message = text(status.message, paused)
  return hs
end

local reconciling = condition(status, "Reconciling")
local progressing = condition(status, "Progressing")
if is_true(reconciling) or is_true(progressing) then
  hs.status = "Progressing"
  local busy = reconciling
  if not is_true(busy) then
    busy = progressing
  end
  hs.message = text(busy.message, status.message, "Reconciling")
  return hs
end

local ready = condition(status, "Ready")
local ready_current = ready ~= nil
  and (ready.observedGeneration == nil or generation == nil or ready.observedGeneration == generation)
if status.phase == "Healthy" and is_true(ready) and ready_current then
  hs.status = "Healthy"
  hs.message = text(ready.message, status.message, "Ready")
  return hs
end

hs.status = "Progressing"
if ready ~= nil and not ready_current then
  hs.message = "Waiting for the Ready condition of generation " .. generation
else
  local ready_message = nil
  if ready ~= nil then
    ready_message = ready.message
  end
  hs.message = text(status.message, ready_message, "Waiting for the PaymentService to become Ready")
end
return hs
