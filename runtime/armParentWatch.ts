/**
 * Imported first by each agent process entry (before its heavy imports are evaluated): from here
 * on a dead parent is noticed, and before the process runtime takes over it means exit at once.
 */
import { armParentWatch } from "./parentWatch.js";

armParentWatch();
