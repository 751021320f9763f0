-- Argo CD resource-action discovery for paydeck.dev/PaymentService (argocd-cm key
-- resource.customizations.actions.paydeck.dev_PaymentService, `discovery.lua`).
-- Offers promote / promote-full / abort while a canary is in flight, and retry after an
-- aborted or failed rollout. The actions themselves only write status.command.
local actions = {}
local status = obj.status or {}
local canary = status.canary or {}

local in_flight = status.canaryRevision ~= nil and status.canaryRevision ~= ""
  and canary.aborted ~= true
local failed = canary.aborted == true or status.phase == "Degraded"

actions["promote"] = {["disabled"] = not in_flight}
actions["promote-full"] = {["disabled"] = not in_flight}
actions["abort"] = {["disabled"] = not in_flight}
actions["retry"] = {["disabled"] = not failed}
return actions
